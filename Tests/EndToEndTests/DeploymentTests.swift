import Foundation
import Shared
import XCTest

/// compose/: the systemd units, the docker compose cluster and omx-node (the containers' main
/// process). Validated with the real validators where this machine has them (`systemd-analyze
/// verify`, `systemctl --root enable`, `docker compose config`), which skip loudly when missing;
/// checked by structure always; omx-node is run for real with the built services. Each check
/// is also shown to catch a broken copy, so none passes by accident.
final class DeploymentTests: XCTestCase {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    var compose: String { repo + "/compose" }
    var composeFile: String { compose + "/docker-compose.yml" }
    var dir = ""

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
}
