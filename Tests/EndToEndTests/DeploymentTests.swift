import Foundation
import Shared
import XCTest

/// compose/: the systemd units, the docker compose cluster and omx-node (the containers' main
/// process). Validated with the real validators where this machine has them (`systemd-analyze
/// verify`, `systemctl --root enable`, `docker compose config`), which skip loudly when missing;
/// checked by structure always; omx-node is run for real with the built services. Each check
/// is also shown to catch a broken copy, so none passes by accident.
final class DeploymentTests: XCTestCase {
    private let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    private var compose: String { repo + "/compose" }
    private var composeFile: String { compose + "/docker-compose.yml" }
    private var dir = ""

    /// The services the issue names, and the command each unit runs.
    static let services: [(unit: String, command: String)] = [
        ("omx-discovery.service", "/usr/local/bin/omx-discovery"),
        ("omx-balancer.service", "/usr/local/bin/omx-balancer"),
        ("omx-migrator.service", "/usr/local/bin/omx-migrator"),
        ("omx-fsgateway@.service", "/usr/local/bin/omx-fsgateway serve --instance %i"),
        ("omx-mfs.service", "/usr/local/bin/omx-fsgateway mount /mfs"),
    ]
    /// What `systemctl enable omx.target` enables.
    static let enabledByTarget = ["omx-discovery.service", "omx-balancer.service", "omx-migrator.service", "omx-fsgateway@0.service", "omx-mfs.service"]
    static let executables = ["omx", "omx-discovery", "omx-balancer", "omx-migrator", "omx-fsgateway", "omx-jobinit"]

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "omx-deploy-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        removeTree(dir)  // never through a mount left in it
    }

    // MARK: - systemd units

    func testTheUnitsAreTheOnesTheIssueNamesEachPartOfOmxTarget() throws {
        XCTAssertEqual(Self.unitProblems(in: compose + "/systemd"), [])

        // The check catches a Migrator unit whose stop would kill its jobs, and a unit left out of omx.target.
        try copyUnits(to: dir) { name, text in
            switch name {
            case "omx-migrator.service": return text.replacingOccurrences(of: "KillMode=process\n", with: "")
            case "omx.target": return text.replacingOccurrences(of: " omx-mfs.service", with: "")
            default: return text
            }
        }
        let problems = Self.unitProblems(in: dir)
        XCTAssertTrue(problems.contains { $0.hasPrefix("omx-migrator.service: no KillMode=process") }, "\(problems)")
        XCTAssertTrue(problems.contains { $0.hasPrefix("omx.target: Also= lacks omx-mfs.service") }, "\(problems)")
    }

    func testSystemdAnalyzeVerifiesTheUnitsWithoutAWarning() throws {
        guard let analyze = which("systemd-analyze") else {
            throw XCTSkip("systemd-analyze is not installed: the systemd units were NOT verified (apt-get install systemd)")
        }
        // The units run /usr/local/bin/omx-*: verify copies that run the executables built here.
        let bin = builtExecutablesFolder()
        for name in Self.executables {
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "\(bin)/\(name)"), "\(bin)/\(name) is built")
        }
        let names = try copyUnits(to: dir) { $1.replacingOccurrences(of: "/usr/local/bin/", with: bin + "/") }
        let files = names.map { "\(dir)/\($0)" } + ["\(dir)/omx-fsgateway@3.service"]
        let result = LocalCluster.runAbsolute(analyze, ["verify"] + files)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertEqual(Self.linesAboutOurUnits(result.stdout + result.stderr), [], "systemd-analyze verify warns about our units")

        // This systemd-analyze does report what is wrong: an unknown key (a warning, exit 0) and
        // an executable that does not exist (an error).
        let broken = dir + "/broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        let discovery = try String(contentsOfFile: "\(dir)/omx-discovery.service", encoding: .utf8)
        try discovery.replacingOccurrences(of: "[Install]", with: "TimeoutStopSecs=15s\n[Install]")
            .write(toFile: "\(broken)/omx-discovery.service", atomically: true, encoding: .utf8)
        let warned = LocalCluster.runAbsolute(analyze, ["verify", "\(broken)/omx-discovery.service"])
        XCTAssertTrue(Self.linesAboutOurUnits(warned.stdout + warned.stderr).contains { $0.contains("TimeoutStopSecs") }, warned.stderr)
        try discovery.replacingOccurrences(of: "\(bin)/omx-discovery", with: "\(dir)/no-such-omx-discovery")
            .write(toFile: "\(broken)/omx-discovery.service", atomically: true, encoding: .utf8)
        XCTAssertNotEqual(LocalCluster.runAbsolute(analyze, ["verify", "\(broken)/omx-discovery.service"]).status, 0)
    }

    func testEnablingOmxTargetEnablesEveryPartOfTheNode() throws {
        guard let systemctl = which("systemctl") else {
            throw XCTSkip("systemctl is not installed: `systemctl enable omx.target` was NOT checked")
        }
        let root = dir + "/root"
        let units = root + "/etc/systemd/system"
        try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
        try copyUnits(to: units)
        func wants() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: "\(units)/omx.target.wants")) ?? []) }

        let enable = LocalCluster.runAbsolute(systemctl, ["--root=\(root)", "enable", "omx.target"])
        XCTAssertEqual(enable.status, 0, enable.stderr)
        XCTAssertEqual(wants(), Set(Self.enabledByTarget))
        XCTAssertNotNil(try? FileManager.default.destinationOfSymbolicLink(atPath: "\(units)/multi-user.target.wants/omx.target"), "omx.target starts at boot")

        // As many gateway instances as wanted; a node without the /mfs mount.
        XCTAssertEqual(LocalCluster.runAbsolute(systemctl, ["--root=\(root)", "enable", "omx-fsgateway@1.service"]).status, 0)
        XCTAssertEqual(LocalCluster.runAbsolute(systemctl, ["--root=\(root)", "disable", "omx-mfs.service"]).status, 0)
        XCTAssertEqual(wants(), Set(Self.enabledByTarget.filter { $0 != "omx-mfs.service" } + ["omx-fsgateway@1.service"]))
    }

    // MARK: - docker compose

    func testDockerComposeAcceptsTheComposeFile() throws {
        guard let docker = which("docker") else {
            throw XCTSkip("docker is not installed: compose/docker-compose.yml was NOT validated by docker compose")
        }
        guard LocalCluster.runAbsolute(docker, ["compose", "version"]).status == 0 else {
            throw XCTSkip("the docker compose plugin is not installed (sudo scripts/install-compose.sh): compose/docker-compose.yml was NOT validated by docker compose")
        }
        let check = LocalCluster.runAbsolute(docker, ["compose", "-f", composeFile, "config", "-q"])
        XCTAssertEqual(check.status, 0, check.stderr)

        // Compose's own merged model: every node has what it needs.
        let resolved = LocalCluster.runAbsolute(docker, ["compose", "-f", composeFile, "config", "--format", "json"])
        XCTAssertEqual(resolved.status, 0, resolved.stderr)
        let model = try JSONSerialization.jsonObject(with: Data(resolved.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(try resolvedProblems(model ?? [:]), [])

        // docker compose does refuse a broken file (`config` does not open the files it mounts,
        // so the copy may live elsewhere).
        let broken = dir + "/docker-compose.yml"
        try (try String(contentsOfFile: composeFile, encoding: .utf8)).replacingOccurrences(of: "cap_add:", with: "cap_adds:")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let refused = LocalCluster.runAbsolute(docker, ["compose", "-f", broken, "config", "-q"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("cap_adds"), refused.stderr)
    }

    func testEveryComposeNodeHasItsPrivilegesKeyMapAndAddressAsPyYAMLMergesIt() throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("/usr/bin/python3 is not installed: the merged compose model was NOT checked (the plain-text checks still run)")
        }
        func load(_ path: String) throws -> [String: Any] {
            let result = LocalCluster.runAbsolute(python, ["-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", path])
            if result.stderr.contains("No module named 'yaml'") {
                throw XCTSkip("python3-yaml is not installed: the merged compose model was NOT checked (the plain-text checks still run)")
            }
            XCTAssertEqual(result.status, 0, result.stderr)
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        }
        XCTAssertEqual(try resolvedProblems(try load(composeFile)), [])

        // Caught: a node off its map address, a node whose own cap_add replaces the shared one.
        let text = try String(contentsOfFile: composeFile, encoding: .utf8)
            .replacingOccurrences(of: "ipv4_address: 172.28.0.12", with: "ipv4_address: 172.28.0.22")
            .replacingOccurrences(of: "    hostname: node3\n", with: "    hostname: node3\n    cap_add: [SYS_ADMIN]\n")
        try text.write(toFile: dir + "/broken.yml", atomically: true, encoding: .utf8)
        let problems = try resolvedProblems(try load(dir + "/broken.yml"))
        XCTAssertTrue(problems.contains { $0.hasPrefix("node2: address 172.28.0.22") }, "\(problems)")
        XCTAssertTrue(problems.contains { $0.hasPrefix("node3: no CHECKPOINT_RESTORE") }, "\(problems)")
    }

    func testTheComposeFileAsTextGivesEveryNodeTheSharedPartAndItsMapAddress() throws {
        let map = try mapAddresses()
        XCTAssertEqual(map.count, 3, "compose/cluster.map has the 3 nodes of docker-compose.yml")
        let text = try String(contentsOfFile: composeFile, encoding: .utf8)
        XCTAssertEqual(Self.composeTextProblems(text, map: map), [])
        XCTAssertTrue(FileManager.default.fileExists(atPath: compose + "/omx.conf"), "docker-compose.yml mounts compose/omx.conf")

        let broken = text.replacingOccurrences(of: "    - SYS_PTRACE\n", with: "")
            .replacingOccurrences(of: "ipv4_address: 172.28.0.13", with: "ipv4_address: 172.28.0.31")
        let problems = Self.composeTextProblems(broken, map: map)
        XCTAssertTrue(problems.contains("x-node: no `- SYS_PTRACE`"), "\(problems)")
        XCTAssertTrue(problems.contains { $0.hasPrefix("node3: address 172.28.0.31") }, "\(problems)")
    }

    func testNoClusterKeyIsCommittedOrSentIntoTheImage() throws {
        let ignored = try String(contentsOfFile: compose + "/.gitignore", encoding: .utf8)
        XCTAssertTrue(ignored.split(separator: "\n").contains("cluster.key"), "compose/.gitignore keeps compose/cluster.key out of git")
        let dockerignore = try String(contentsOfFile: compose + "/Dockerfile.dockerignore", encoding: .utf8)
        XCTAssertTrue(dockerignore.split(separator: "\n").contains("compose/cluster.key"), "the image build never sees the key")
    }

    // MARK: - omx-node, the containers' main process

    func testOmxNodeStartsEveryPartRestartsADeadOneAndStopsThemInOrder() async throws {
        let bin = builtExecutablesFolder()
        let withMfs = getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/fusermount3")
        let run = dir + "/run", mountpoint = dir + "/mfs", export = dir + "/export"
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        try "1 127.0.91.1 1\n".write(toFile: dir + "/cluster.map", atomically: true, encoding: .utf8)
        let keygen = LocalCluster.run("omx", ["keygen", "-o", dir + "/cluster.key"])
        XCTAssertEqual(keygen.status, 0, keygen.stderr)
        try """
            [mfs]
            enabled = \(withMfs ? "yes" : "no")
            mountpoint = \(mountpoint)
            export = \(export)
            [migrator]
            state_dir = \(dir)/state
            spool_dir = \(dir)/spool
            """.write(toFile: dir + "/omx.conf", atomically: true, encoding: .utf8)
        let environment = ["OMX_CONFIG": dir + "/omx.conf", "OMX_MAP": dir + "/cluster.map", "OMX_KEY": dir + "/cluster.key", "OMX_RUN_DIR": run]
        let log = dir + "/omx-node.log"
        func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        func started(_ part: String) -> [pid_t] {
            logText().split(separator: "\n").compactMap { line in
                guard line.hasPrefix("omx-node: started \(part) (pid "), let end = line.firstIndex(of: ")") else { return nil }
                return pid_t(line[line.index(line.startIndex, offsetBy: "omx-node: started \(part) (pid ".count)..<end])
            }
        }
        func mounted() -> Bool { ((try? readTextFile("/proc/self/mounts")) ?? "").contains(" \(mountpoint) fuse") }
        func alive(_ pid: pid_t) -> Bool {
            guard let status = try? readTextFile("/proc/\(pid)/status") else { return false }
            return !status.contains("State:\tZ")
        }
        func ping(_ service: String) -> CommandResult { LocalCluster.run("omx", ["ping", service], environment: environment) }

        let node = try ChildProcess.spawn("/bin/bash", ["\(compose)/omx-node.sh"], stderrPath: log,
                                          environment: environment.merging(["OMX_BIN": bin, "OMX_GATEWAYS": "2"]) { $1 })
        defer {
            if node.poll() == nil {
                node.send(SIGKILL)
                node.wait()
            }
            // What a failed run left behind: every part omx-node started, and the mount.
            for part in ["discovery", "balancer", "migrator", "fsgateway-0", "fsgateway-1", "mfs"] {
                for pid in started(part) where alive(pid) { kill(pid, SIGKILL) }
            }
            if mounted() { _ = LocalCluster.runAbsolute("/usr/bin/fusermount3", ["-u", "-z", mountpoint]) }
        }

        var sockets = ["discovery.sock", "balancer.sock", "migrator.sock"]
        if withMfs { sockets += ["fsgateway-0.sock", "fsgateway-1.sock"] }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, node.poll() == nil,
              !(sockets.allSatisfy { FileManager.default.fileExists(atPath: "\(run)/\($0)") } && (!withMfs || mounted())) {
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertNil(node.poll(), "omx-node runs: \(logText())")
        for socket in sockets { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/\(socket)"), "\(socket): \(logText())") }
        XCTAssertEqual(withMfs, mounted(), "the cluster's files are mounted when oMFS is on")
        if !withMfs { XCTAssertTrue(logText().contains("oMFS is off"), logText()) }
        let first = ping("migrator")
        XCTAssertEqual(first.status, 0, first.stderr)

        // A Migrator that dies is started again.
        let killed = try XCTUnwrap(started("migrator").last, logText())
        kill(killed, SIGKILL)
        let restartDeadline = Date().addingTimeInterval(20)
        while Date() < restartDeadline, !(started("migrator").count == 2 && ping("migrator").status == 0) {
            try await Task.sleep(for: .milliseconds(200))
        }
        XCTAssertEqual(started("migrator").count, 2, logText())
        XCTAssertTrue(logText().contains("migrator (pid \(killed)) exited with status 137"), logText())
        XCTAssertEqual(ping("migrator").status, 0, "the new Migrator answers: \(logText())")

        // SIGTERM stops every part, the Balancer first and Discovery last, and unmounts.
        node.send(SIGTERM)
        let status = await node.wait(milliseconds: 90_000)
        XCTAssertEqual(status, 0, logText())
        let text = logText()
        let order = ["stopping balancer", "stopping migrator", "stopping discovery", "omx-node: stopped"].map { text.range(of: $0)?.lowerBound }
        XCTAssertFalse(order.contains { $0 == nil }, text)
        let positions = order.compactMap { $0 }
        XCTAssertEqual(positions, positions.sorted(), "stopped in order: \(text)")
        for part in ["discovery", "balancer", "migrator", "fsgateway-0", "fsgateway-1", "mfs"] {
            for pid in started(part) { XCTAssertFalse(alive(pid), "\(part) (pid \(pid)) is gone") }
        }
        XCTAssertFalse(mounted(), "the mount is gone")
    }

    // MARK: - scripts/install.sh

    func testInstallShPutsEveryPartInPlaceOnceAndKeepsAnExistingConfiguration() throws {
        let root = dir + "/root"
        let first = LocalCluster.runAbsolute("/bin/bash", [repo + "/scripts/install.sh", "--from", builtExecutablesFolder(), "--root", root])
        XCTAssertEqual(first.status, 0, first.stderr)
        for executable in DeploymentTests.executables {
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: "\(root)/usr/local/bin/\(executable)"), executable)
        }
        for (unit, _) in DeploymentTests.services { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/etc/systemd/system/\(unit)"), unit) }
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(root)/usr/sbin/mount.mfs"), "/usr/local/bin/omx-fsgateway")
        XCTAssertEqual(try String(contentsOfFile: "\(root)/etc/omx/omx.conf", encoding: .utf8), try String(contentsOfFile: compose + "/omx.conf", encoding: .utf8))
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: "\(root)/etc/omx/omx.conf"))[.posixPermissions] as? Int, 0o644)

        try "[cluster]\ndisclosure = 0\n".write(toFile: "\(root)/etc/omx/omx.conf", atomically: true, encoding: .utf8)
        let second = LocalCluster.runAbsolute("/bin/bash", [repo + "/scripts/install.sh", "--from", builtExecutablesFolder(), "--root", root])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stdout.contains("everything was already installed"), second.stdout)
        XCTAssertEqual(try String(contentsOfFile: "\(root)/etc/omx/omx.conf", encoding: .utf8), "[cluster]\ndisclosure = 0\n", "an existing omx.conf is kept")

        let missing = LocalCluster.runAbsolute("/bin/bash", [repo + "/scripts/install.sh", "--from", dir + "/nothing", "--root", root])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("\(dir)/nothing/omx is missing"), missing.stderr)
    }

    // MARK: - Helpers

    /// The folder of the executables built with the tests (where `swift build` put them).
    private func builtExecutablesFolder() -> String {
        URL(fileURLWithPath: siblingExecutable("omx-discovery")).deletingLastPathComponent().path
    }

    /// The first executable `name` on PATH or in the usual system folders.
    private func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        return folders.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Copies compose/systemd/* into `folder`, each through `edit(name, text)`; returns the names.
    @discardableResult
    private func copyUnits(to folder: String, _ edit: (String, String) -> String = { $1 }) throws -> [String] {
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
    private func mapAddresses() throws -> [Int: String] {
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
    private func resolvedProblems(_ model: [String: Any]) throws -> [String] {
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
