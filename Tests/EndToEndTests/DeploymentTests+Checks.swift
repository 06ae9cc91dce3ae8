import Foundation
import Shared
import XCTest

/// The checks `DeploymentTests` makes of the units and the compose file, and where it finds
/// the built executables and the commands it runs.
extension DeploymentTests {
    /// The folder of the executables built with the tests (where `swift build` put them).
    func builtExecutablesFolder() -> String {
        URL(fileURLWithPath: siblingExecutable("omx-discovery")).deletingLastPathComponent().path
    }

    /// The first executable `name` on PATH or in the usual system folders.
    func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Copies compose/systemd/* into `folder`, each through `edit(name, text)`; returns the names.
    @discardableResult
    func copyUnits(to folder: String, _ edit: (String, String) -> String = { $1 }) throws -> [String] {
        let source = compose + "/systemd"
        let names = try FileManager.default.contentsOfDirectory(atPath: source).sorted()
        for name in names {
            let text = try String(contentsOfFile: "\(source)/\(name)", encoding: .utf8)
            try edit(name, text).write(toFile: "\(folder)/\(name)", atomically: true, encoding: .utf8)
        }
        return names
    }

    /// The lines of a validator's output about our units (their names, or the folder they are in).
    static func linesAboutOurUnits(_ output: String) -> [String] {
        output.split(separator: "\n").map(String.init).filter { $0.contains("omx") }
    }

    /// A unit file as section -> key -> values (a key may repeat).
    static func parseUnit(_ text: String) -> [String: [String: [String]]] {
        var sections: [String: [String: [String]]] = [:]
        var section = ""
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[section, default: [:]][key, default: []].append(value)
        }
        return sections
    }

    /// What is wrong with the units in `folder`: one line per problem, none when they are right.
    static func unitProblems(in folder: String) -> [String] {
        var problems: [String] = []
        func load(_ name: String) -> [String: [String: [String]]]? {
            guard let text = try? String(contentsOfFile: "\(folder)/\(name)", encoding: .utf8) else {
                problems.append("\(name) is missing")
                return nil
            }
            return parseUnit(text)
        }
        func words(_ values: [String]?) -> [String] { (values ?? []).flatMap { $0.split(separator: " ").map(String.init) } }

        if let target = load("omx.target") {
            let also = words(target["Install"]?["Also"])
            for unit in enabledByTarget where !also.contains(unit) { problems.append("omx.target: Also= lacks \(unit)") }
            if !words(target["Install"]?["WantedBy"]).contains("multi-user.target") { problems.append("omx.target: not WantedBy=multi-user.target") }
        }
        for (name, command) in services {
            guard let unit = load(name) else { continue }
            let service = unit["Service"] ?? [:]
            if service["ExecStart"] != [command] { problems.append("\(name): ExecStart=\(service["ExecStart"] ?? []) instead of \(command)") }
            if !words(unit["Install"]?["WantedBy"]).contains("omx.target") { problems.append("\(name): not WantedBy=omx.target") }
            if !words(unit["Unit"]?["PartOf"]).contains("omx.target") { problems.append("\(name): not PartOf=omx.target (stopping omx.target would leave it running)") }
            if !(service["EnvironmentFile"] ?? []).contains("-/etc/default/omx") { problems.append("\(name): no EnvironmentFile=-/etc/default/omx") }
            if name != "omx-discovery.service" && !words(unit["Unit"]?["After"]).contains("omx-discovery.service") {
                problems.append("\(name): not After=omx-discovery.service")
            }
            switch name {
            case "omx-migrator.service":
                if service["KillMode"] != ["process"] { problems.append("\(name): no KillMode=process (stopping the Migrator would kill its jobs)") }
                let timeout = service["TimeoutStopSec"]?.last.flatMap { Int($0.replacingOccurrences(of: "s", with: "")) } ?? 0
                if timeout < 30 { problems.append("\(name): TimeoutStopSec below 30 s leaves no time to send guest jobs away") }
            case "omx-mfs.service":
                if !(service["ExecStopPost"] ?? []).contains(where: { $0.contains("fusermount3 -u -z /mfs") }) {
                    problems.append("\(name): no ExecStopPost unmounting /mfs")
                }
            case "omx-fsgateway@.service":
                if unit["Install"]?["DefaultInstance"] != ["0"] { problems.append("\(name): no DefaultInstance=0") }
            default:
                break
            }
        }
        return problems
    }

    /// Node id -> address, as the real map parser (`omx map check --json`) expands compose/cluster.map.
    func mapAddresses() throws -> [Int: String] {
        let check = LocalCluster.run("omx", ["map", "check", "-f", "\(compose)/cluster.map", "--json"])
        XCTAssertEqual(check.status, 0, check.stderr)
        let nodes = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [[String: Any]] ?? []
        var addresses: [Int: String] = [:]
        for node in nodes {
            if let id = node["id"] as? Int, let address = node["address"] as? String { addresses[id] = address }
        }
        return addresses
    }

    /// An IPv4 address as a number.
    static func ipv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ $0 < 256 }) else { return nil }
        return parts.reduce(0) { $0 << 8 | $1 }
    }

    /// What is wrong with the node services of a merged compose model (anchors resolved): one
    /// line per problem.
    func resolvedProblems(_ model: [String: Any]) throws -> [String] {
        let map = try mapAddresses()
        var problems: [String] = []
        let services = model["services"] as? [String: Any] ?? [:]
        let nodes = services.keys.filter { $0.hasPrefix("node") }.sorted()
        if Set(nodes.compactMap { Int($0.dropFirst(4)) }) != Set(map.keys) {
            problems.append("node services \(nodes) are not the map's nodes \(map.keys.sorted())")
        }
        let network = (model["networks"] as? [String: Any])?["omx"] as? [String: Any]
        let subnet = (((network?["ipam"] as? [String: Any])?["config"] as? [[String: Any]])?.first?["subnet"] as? String) ?? ""
        let subnetParts = subnet.split(separator: "/")
        let subnetBase = subnetParts.first.flatMap { Self.ipv4(String($0)) }
        let prefix = subnetParts.count == 2 ? UInt32(subnetParts[1]) ?? 33 : 33
        if subnetBase == nil || prefix > 32 { problems.append("network omx has no IPv4 subnet (\(subnet))") }
        let mask: UInt32 = prefix == 0 || prefix > 32 ? 0 : ~UInt32(0) << (32 - prefix)

        for name in nodes {
            let service = services[name] as? [String: Any] ?? [:]
            let devices = (service["devices"] as? [Any] ?? []).map { device -> String in
                if let text = device as? String { return text }
                return ((device as? [String: Any])?["source"] as? String) ?? ""
            }
            if !devices.contains(where: { $0.hasPrefix("/dev/fuse") }) { problems.append("\(name): no /dev/fuse device") }
            let capabilities = service["cap_add"] as? [String] ?? []
            for capability in ["SYS_ADMIN", "CHECKPOINT_RESTORE", "SYS_PTRACE"]
            where !capabilities.contains(capability) && !capabilities.contains("CAP_" + capability) {
                problems.append("\(name): no \(capability) in cap_add")
            }
            let options = service["security_opt"] as? [String] ?? []
            for option in ["apparmor", "seccomp"] where !options.contains("\(option)=unconfined") && !options.contains("\(option):unconfined") {
                problems.append("\(name): security_opt lacks \(option)=unconfined")
            }
            var readOnlyTargets: [String] = []
            for volume in service["volumes"] as? [Any] ?? [] {
                if let text = volume as? String {
                    let parts = text.split(separator: ":").map(String.init)
                    if parts.count >= 3 && parts[2].split(separator: ",").contains("ro") { readOnlyTargets.append(parts[1]) }
                } else if let entry = volume as? [String: Any], let target = entry["target"] as? String {
                    let readOnly = (entry["read_only"] as? Bool) ?? ((entry["read_only"] as? NSNumber)?.boolValue ?? false)
                    if readOnly { readOnlyTargets.append(target) }
                }
            }
            for target in ["/etc/openmosix.map", "/etc/omx/cluster.key"] where !readOnlyTargets.contains(target) {
                problems.append("\(name): no read-only mount at \(target)")
            }
            let address = ((service["networks"] as? [String: Any])?["omx"] as? [String: Any])?["ipv4_address"] as? String
            if let id = Int(name.dropFirst(4)), address != map[id] {
                problems.append("\(name): address \(address ?? "none") but cluster.map gives node \(id) \(map[id] ?? "no address")")
            }
            if let address, let number = Self.ipv4(address), let subnetBase, number & mask != subnetBase & mask {
                problems.append("\(name): address \(address) is outside the network's subnet \(subnet)")
            }
        }
        return problems
    }

    /// The compose file read as text, without a YAML parser: the shared `x-node` block has the
    /// devices, capabilities, security options and read-only key and map mounts; every `nodeK`
    /// service merges it (`<<: *node`) without replacing those lists and has the map's address.
    static func composeTextProblems(_ text: String, map: [Int: String]) -> [String] {
        var problems: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func isTopLevel(_ line: String) -> Bool { !line.isEmpty && !line.hasPrefix(" ") && !line.hasPrefix("#") }
        /// The lines of top-level block `name`, without its first line.
        func block(_ name: String) -> [String] {
            guard let start = lines.firstIndex(where: { isTopLevel($0) && $0.hasPrefix(name) }) else { return [] }
            let rest = lines[(start + 1)...]
            return Array(rest.prefix { !isTopLevel($0) })
        }
        let shared = block("x-node: &node").map { $0.trimmingCharacters(in: .whitespaces) }
        if shared.isEmpty { problems.append("no `x-node: &node` block") }
        for wanted in ["- /dev/fuse:/dev/fuse", "- SYS_ADMIN", "- CHECKPOINT_RESTORE", "- SYS_PTRACE", "- apparmor=unconfined", "- seccomp=unconfined"]
        where !shared.contains(wanted) {
            problems.append("x-node: no `\(wanted)`")
        }
        for target in ["/etc/openmosix.map", "/etc/omx/cluster.key"] {
            guard let index = shared.firstIndex(of: "target: \(target)") else {
                problems.append("x-node: no mount at \(target)")
                continue
            }
            if index + 1 >= shared.count || shared[index + 1] != "read_only: true" { problems.append("x-node: the mount at \(target) is not read_only") }
        }

        var nodes: [(name: String, lines: [String])] = []
        for line in block("services:") {
            if line.hasPrefix("  ") && !line.hasPrefix("   ") && line.hasSuffix(":") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
                nodes.append((String(line.dropFirst(2).dropLast()), []))
            } else if !nodes.isEmpty {
                nodes[nodes.count - 1].lines.append(line.trimmingCharacters(in: .whitespaces))
            }
        }
        let ids = nodes.compactMap { $0.name.hasPrefix("node") ? Int($0.name.dropFirst(4)) : nil }
        if Set(ids) != Set(map.keys) || ids.count != nodes.count { problems.append("services \(nodes.map(\.name)) are not node1...node\(map.count) of the map") }
        for node in nodes {
            if !node.lines.contains("<<: *node") { problems.append("\(node.name): does not merge the shared part (`<<: *node`)") }
            for key in ["devices:", "cap_add:", "security_opt:", "volumes:"] where node.lines.contains(where: { $0.hasPrefix(key) }) {
                problems.append("\(node.name): its own \(key) replaces the shared one")
            }
            let address = node.lines.first { $0.hasPrefix("ipv4_address:") }.map { String($0.dropFirst("ipv4_address:".count)).trimmingCharacters(in: .whitespaces) }
            if let id = Int(node.name.dropFirst(4)), address != map[id] {
                problems.append("\(node.name): address \(address ?? "none") but cluster.map gives node \(id) \(map[id] ?? "no address")")
            }
        }
        return problems
    }
}
