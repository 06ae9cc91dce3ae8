import Foundation
import Logging
import Shared
import XCTest

/// omx.conf read by real services and the `omx` tool: ports, the disclosure level, secure
/// ports off, oMFS off, and a bad file refused with its file:line.
final class ConfigurationEndToEndTests: XCTestCase {
    func testAClusterRunsOnTheConfiguredPortsAndDisclosureLevel() async throws {
        let cluster = try DiscoveryCluster(subnet: 57, nodes: 2, gateways: 1, configText: """
            [cluster]
            disclosure = 0
            secure_ports = no
            [ports]
            discovery = 17701
            balancer = 17702
            migrator = 17703
            fsgateway = 17710
            [mfs]
            enabled = no
            """)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }

        let listening = try readTextFile("/proc/net/tcp")
        for (node, port) in [(1, 17701), (2, 17701), (1, 17702), (1, 17703), (2, 17703)] {
            // /proc/net/tcp lists local addresses as little-endian hex IPv4 : hex port.
            let address = String(format: "%02X%02X%02X%02X:%04X", node, 57, 0, 127, port)
            XCTAssertTrue(listening.contains(address), "something listens on 127.0.57.\(node):\(port)")
        }
        XCTAssertFalse(listening.contains(String(format: "%02X%02X%02X%02X:%04X", 1, 57, 0, 127, 7701)), "nothing listens on the default port")
        for service in ["migrator", "balancer", "discovery"] {
            let ping = cluster.omx(["ping", service, "--node", "2"])
            XCTAssertEqual(ping.status, 0, "\(service) of node 2 answers on its configured port over TCP: \(ping.stderr)")
        }
        // oMFS is off: no gateway and no mount were started, and starting one says why.
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(cluster.runDir(1))/fsgateway-0.sock"))
        let gateway = LocalCluster.run("omx-fsgateway", ["serve", "--config", cluster.configPath!, "--map", cluster.mapPath, "--key", cluster.keyPath, "--node-id", "1"])
        XCTAssertEqual(gateway.status, 78, "EX_CONFIG: the systemd units do not restart it")
        XCTAssertTrue(gateway.stderr.contains("\(cluster.configPath!):10: oMFS is turned off"), gateway.stderr)

        // Secure ports off: a caller holding the key is served from an address outside the map.
        let loop = try EventLoop()
        let stranger = RPCClient(
            loop: loop, endpoint: .tcp(host: "127.0.57.1", port: 17701),
            configuration: .init(authenticator: Authenticator(key: try ClusterKey.load(from: cluster.keyPath), nodeID: 0), bindAddress: "127.0.57.200"),
            logger: Logger(label: "test"))
        let health = try await stranger.call("Health", HealthRequest(), returning: HealthResponse.self, timeout: .seconds(5))
        XCTAssertEqual(health.service, "discovery")
        await stranger.close()
        await loop.shutdown()

        // Disclosure 0: a user sees their own jobs only; root sees everyone's.
        let rootJob = try cluster.run(["/bin/sleep", "60"])
        let user = LocalCluster.runAbsolute("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "OMX_RUN_DIR=\(cluster.runDir(1))", "OMX_CONFIG=\(cluster.configPath!)",
            siblingExecutable("omx"), "run", "--", "/bin/sleep", "60",
        ])
        XCTAssertEqual(user.status, 0, user.stderr)
        let userJob = user.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let usersView = LocalCluster.runAbsolute("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "OMX_RUN_DIR=\(cluster.runDir(1))", "OMX_CONFIG=\(cluster.configPath!)",
            siblingExecutable("omx"), "mps", "--json",
        ])
        let seenByUser = ((try? JSONSerialization.jsonObject(with: Data(usersView.stdout.utf8))) as? [[String: Any]] ?? []).compactMap { $0["job"] as? String }
        XCTAssertEqual(seenByUser, [userJob], usersView.stdout + usersView.stderr)
        let seenByRoot = cluster.jobs().compactMap { $0["job"] as? String }
        XCTAssertEqual(Set(seenByRoot), [rootJob, userJob])
        _ = cluster.omx(["kill", "-KILL", rootJob, userJob])
    }

    func testABadConfigurationIsRefusedWithItsFileAndLine() throws {
        let dir = NSTemporaryDirectory() + "omx-config-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { removeTree(dir) }
        let path = dir + "/omx.conf"
        try "[cluster]\ndisclosure = 1\n\n[ports]\nmigrator = seven\n".write(toFile: path, atomically: true, encoding: .utf8)
        let status = LocalCluster.run("omx", ["status", "--config", path])
        XCTAssertEqual(status.status, 1)
        XCTAssertTrue(status.stderr.contains("\(path):5: ports.migrator = \"seven\": expected a whole number from 1 to 65535"), status.stderr)
        let service = LocalCluster.run("omx-migrator", ["--config", path])
        XCTAssertNotEqual(service.status, 0)
        XCTAssertTrue(service.stderr.contains("\(path):5:"), service.stderr)
        let missing = LocalCluster.run("omx", ["mps"], environment: ["OMX_CONFIG": dir + "/absent.conf"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("\(dir)/absent.conf: No such file or directory"), missing.stderr)
    }
}
