import Foundation
import Shared
import XCTest

final class OMXConfigTests: XCTestCase {
    private let documented = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("compose/omx.conf").path

    func testAFileSetsEveryKindOfValue() throws {
        let config = try OMXConfig.parse(
            """
            # a node
            [cluster]
            map = /etc/omx/cluster.map   # trailing comment
            secure_ports = no
            disclosure = 0
            log_level = debug
            answer_poll_us = 0

            [ports]
            discovery = 8701
            fsgateway = 8710
            [mfs]
            enabled = off
            mountpoint = /cluster
            lease_seconds = 120
            io_threads = 32
            [balancer]
            hysteresis = 0.35
            load_source = jobs
            min_residence_ms = 5000
            [migrator]
            max_transfer_rate = 40
            lost_after = 90
            [limits]
            connections_per_user = 32
            stalled_seconds = 5
            """, source: "omx.conf")
        XCTAssertEqual(config.mapPath, "/etc/omx/cluster.map")
        XCTAssertFalse(config.securePorts)
        XCTAssertEqual(config.disclosure, .ownJobsOnly)
        XCTAssertEqual(config.logLevel, "debug")
        XCTAssertEqual(config.answerPollMicroseconds, 0)
        XCTAssertEqual(OMXConfig().answerPollMicroseconds, 100)
        XCTAssertEqual(config.ports.discovery, 8701)
        XCTAssertEqual(config.ports.balancer, 7702)
        XCTAssertEqual(config.ports.fsgateway, 8710)
        XCTAssertFalse(config.mfs.enabled)
        XCTAssertEqual(config.mfs.enabledSetAt, "omx.conf:13")
        XCTAssertEqual(config.mfs.mountpoint, "/cluster")
        XCTAssertEqual(config.mfs.leaseSeconds, 120)
        XCTAssertEqual(config.mfs.ioThreads, 32)
        XCTAssertEqual(config.balancer.hysteresis, 0.35)
        XCTAssertEqual(config.balancer.loadSource, "jobs")
        XCTAssertEqual(config.balancer.minResidenceMs, 5000)
        XCTAssertNil(config.balancer.fanout)
        XCTAssertEqual(config.migrator.maxTransferRateMiBps, 40)
        XCTAssertEqual(config.migrator.lostAfterSeconds, 90)
        XCTAssertEqual(config.limits.connectionsPerUser, 32)
        XCTAssertNil(config.limits.connectionsPerAddress)
        XCTAssertEqual(config.limits.stalledSeconds, 5)
    }

    func testEveryBadLineIsNamedWithItsFileAndLine() {
        let text = """
            [cluster]
            disclosure = 3
            secure_ports = maybe
            key = relative/key
            colour = blue
            answer_poll_us = 20000
            just words
            [ports]
            migrator = 70000
            migrator = 7703
            [network]
            fanout = 2
            [balancer]
            hysteresis = -1
            load_source = planets
            [mfs]
            lease_seconds = 1
            io_threads = 1
            [limits]
            connections_per_user = 0
            """
        XCTAssertThrowsError(try OMXConfig.parse(text, source: "/etc/omx/omx.conf")) { error in
            XCTAssertEqual(
                (error as? ConfigError)?.description,
                """
                /etc/omx/omx.conf:2: cluster.disclosure = "3": expected a whole number from 0 to 2
                /etc/omx/omx.conf:3: cluster.secure_ports = "maybe": expected yes or no
                /etc/omx/omx.conf:4: cluster.key = "relative/key": expected an absolute path
                /etc/omx/omx.conf:5: unknown key "colour" in [cluster] ([cluster] has answer_poll_us, disclosure, key, log_level, map, run_dir, secure_ports)
                /etc/omx/omx.conf:6: cluster.answer_poll_us = "20000": expected a whole number from 0 to 10000
                /etc/omx/omx.conf:7: expected `key = value`, found "just words"
                /etc/omx/omx.conf:9: ports.migrator = "70000": expected a whole number from 1 to 65535
                /etc/omx/omx.conf:10: ports.migrator is set twice (first on line 9)
                /etc/omx/omx.conf:11: unknown section [network] (sections: [balancer], [cluster], [limits], [mfs], [migrator], [ports])
                /etc/omx/omx.conf:14: balancer.hysteresis = "-1": expected a number from 0 to 10
                /etc/omx/omx.conf:15: balancer.load_source = "planets": expected machine or jobs
                /etc/omx/omx.conf:17: mfs.lease_seconds = "1": expected a whole number from 4 to 86400
                /etc/omx/omx.conf:18: mfs.io_threads = "1": expected a whole number from 2 to 1024
                /etc/omx/omx.conf:20: limits.connections_per_user = "0": expected a whole number from 1 to 1000000
                """)
        }
    }

    func testAKeyOutsideASectionIsRefused() {
        XCTAssertThrowsError(try OMXConfig.parse("disclosure = 1\n", source: "c")) { error in
            XCTAssertEqual((error as? ConfigError)?.description, "c:1: unknown key \"disclosure\" (every key belongs to a [section])")
        }
    }

    /// compose/omx.conf, the file `scripts/install.sh` puts in /etc/omx, documents every key with
    /// its default: it parses as shipped, and with every key uncommented it gives the defaults.
    func testTheShippedFileDocumentsEveryKeyWithItsDefault() throws {
        let text = try String(contentsOfFile: documented, encoding: .utf8)
        XCTAssertEqual(try OMXConfig.parse(text, source: documented).ports, OMXConfig().ports)
        var section = ""
        var documentedKeys: [String] = []
        var uncommented: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("[") { section = String(line.dropFirst().dropLast()) }
            if line.range(of: "^# [a-z_]+ = ", options: .regularExpression) != nil {
                documentedKeys.append("\(section).\(line.dropFirst(2).prefix { $0 != " " })")
                uncommented.append(String(line.dropFirst(2)))
            } else {
                uncommented.append(line)
            }
        }
        XCTAssertEqual(documentedKeys.sorted(), OMXConfig.keys)
        var defaults = try OMXConfig.parse(uncommented.joined(separator: "\n"), source: documented)
        XCTAssertEqual(defaults.ports, OMXConfig().ports)
        XCTAssertEqual(defaults.securePorts, OMXConfig().securePorts)
        XCTAssertEqual(defaults.disclosure, OMXConfig().disclosure)
        XCTAssertEqual(defaults.answerPollMicroseconds, OMXConfig().answerPollMicroseconds)
        defaults.mfs.enabledSetAt = nil
        XCTAssertEqual(defaults.mfs.enabled, true)
        XCTAssertEqual(defaults.mfs.mountpoint, OMXConfig().mfs.mountpoint)
        XCTAssertEqual(defaults.mfs.leaseSeconds, OMXConfig().mfs.leaseSeconds)
        XCTAssertEqual(defaults.mfs.ioThreads, OMXConfig().mfs.ioThreads)
        // The limits documented are the server's own.
        let server = RPCServer.Configuration(name: "", authenticator: nil, allowedAddresses: nil)
        XCTAssertEqual(defaults.limits.connectionsPerUser, server.maxConnectionsPerUser)
        XCTAssertEqual(defaults.limits.connectionsPerAddress, server.maxConnectionsPerAddress)
        XCTAssertEqual(defaults.limits.stalledSeconds.map { Duration.seconds($0) }, server.stalledTimeout)
    }
}
