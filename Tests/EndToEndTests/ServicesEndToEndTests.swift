import Foundation
import Shared
import XCTest

/// Real `omx-*` processes on loopback addresses, driven through the `omx` CLI.
final class ServicesEndToEndTests: XCTestCase {
    func testEveryServiceOfEveryNodeAnswersPingOnItsUnixSocketAndOverTCP() throws {
        let cluster = try LocalCluster(subnet: 71, nodes: 2)
        defer { cluster.stop() }
        try cluster.startNode(1, gateways: 2)
        try cluster.startNode(2)
        let services: [(ServiceKind, UInt32)] = [(.discovery, 0), (.balancer, 0), (.migrator, 0), (.fsgateway, 0)]
        for node: UInt32 in [1, 2] {
            for (kind, instance) in services {
                let local = cluster.omx(["ping", kind.rawValue, "--instance", "\(instance)", "--run-dir", cluster.runDir(node)])
                XCTAssertEqual(local.status, 0, "\(kind) on node \(node) over Unix: \(local.stderr)")
                XCTAssertTrue(local.stdout.contains("\(kind.rawValue) \(omxVersion) on node \(node)"), local.stdout)
                XCTAssertTrue(local.stdout.contains("reply from node \(node): seq=1 time="), local.stdout)

                let remote = cluster.omx(["ping", kind.rawValue, "--node", "\(node)", "--count", "2"])
                XCTAssertEqual(remote.status, 0, "\(kind) on node \(node) over TCP: \(remote.stderr)")
                XCTAssertTrue(remote.stdout.contains("(127.0.71.\(node):\(kind.port(instance: instance)))"), remote.stdout)
                XCTAssertTrue(remote.stdout.contains("2 pings: min/avg/max = "), remote.stdout)
            }
        }
        let secondGateway = cluster.omx(["ping", "fsgateway", "--instance", "1", "--node", "1"])
        XCTAssertEqual(secondGateway.status, 0, secondGateway.stderr)
        XCTAssertTrue(secondGateway.stdout.contains("127.0.71.1:7711"), secondGateway.stdout)
    }

    func testServicesExitCleanlyOnSIGTERMAndRemoveTheirSockets() throws {
        let cluster = try LocalCluster(subnet: 72, nodes: 1)
        defer { cluster.stop() }
        try cluster.startNode(1)
        for (name, process) in cluster.processes {
            process.send(SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while process.poll() == nil && Date() < deadline { usleep(10_000) }
            XCTAssertEqual(process.poll(), 0, "\(name) did not exit cleanly: \(cluster.log(name))")
            XCTAssertTrue(cluster.log(name).contains("received SIGTERM"), cluster.log(name))
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: cluster.runDir(1))
        XCTAssertEqual(left, [], "sockets left behind: \(left)")
    }

    func testASIGTERMAsSoonAsAServiceCanBeReachedDrainsIt() throws {
        let cluster = try LocalCluster(subnet: 112, nodes: 1)
        defer { cluster.stop() }
        let socket = "\(cluster.runDir(1))/\(ServiceKind.discovery.socketName(instance: 0))"
        for attempt in 1...10 {
            unlink(socket)
            let log = cluster.logPath("discovery-\(attempt)")
            let process = try ChildProcess.spawn(
                siblingExecutable(ServiceKind.discovery.executableName),
                ["--map", cluster.mapPath, "--key", cluster.keyPath, "--node-id", "1", "--run-dir", cluster.runDir(1)], stderrPath: log)
            // The signal goes the moment the Unix socket appears.
            let deadline = Date().addingTimeInterval(10)
            while access(socket, F_OK) != 0 && process.poll() == nil && Date() < deadline {}
            process.send(SIGTERM)
            while process.poll() == nil && Date() < deadline { usleep(5_000) }
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            XCTAssertEqual(process.poll(), 0, "attempt \(attempt): \(output)")
            XCTAssertTrue(output.contains("received SIGTERM") && output.contains("stopped"), "attempt \(attempt): \(output)")
            if process.poll() == nil {
                process.send(SIGKILL)
                _ = process.wait()
            }
        }
    }

    func testAServiceWithABrokenMapRefusesToStartNamingFileAndLine() throws {
        let cluster = try LocalCluster(subnet: 73, mapText: "1 127.0.73.1 2\n2 127.0.73.9 1\n")
        defer { cluster.stop() }
        XCTAssertThrowsError(try cluster.start(.discovery, node: 1)) { error in
            XCTAssertTrue("\(error)".contains("cluster.map:2: node 2 is defined twice: already on line 1"), "\(error)")
        }
    }

    func testAServiceRefusesANodeIdTheMapLacks() throws {
        let cluster = try LocalCluster(subnet: 74, nodes: 2)
        defer { cluster.stop() }
        XCTAssertThrowsError(try cluster.start(.migrator, node: 9)) { error in
            XCTAssertTrue("\(error)".contains("--node-id 9: \(cluster.mapPath) has no node 9 (it has 1, 2)"), "\(error)")
        }
    }

    func testACallFromAnAddressOutsideTheMapIsRefusedAndLogged() throws {
        let cluster = try LocalCluster(subnet: 75, mapText: "2 127.0.75.2 2\n")
        defer { cluster.stop() }
        try cluster.start(.discovery, node: 2)
        let cliMap = cluster.dir + "/cli.map"
        try "1 127.0.75.1 2\n".write(toFile: cliMap, atomically: true, encoding: .utf8)
        let refused = cluster.omx(["ping", "discovery", "--node", "2", "--map", cliMap])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("PERMISSION_DENIED"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("address 127.0.75.1 is not in the cluster map of discovery on node 2"), refused.stderr)
        XCTAssertTrue(cluster.log("discovery-0-node2").contains("refused connection: address 127.0.75.1 is not in the cluster map"))
    }

    func testACallWithAnotherClustersKeyIsRefusedAndLogged() throws {
        let cluster = try LocalCluster(subnet: 76, nodes: 2)
        defer { cluster.stop() }
        try cluster.start(.balancer, node: 2)
        let otherKey = cluster.dir + "/other.key"
        XCTAssertEqual(cluster.omx(["keygen", "-o", otherKey]).status, 0)
        let refused = cluster.omx(["ping", "balancer", "--node", "2", "--key", otherKey])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("UNAUTHENTICATED: bad MAC from node 1"), refused.stderr)
        // The first refusal of the connection (its Session offer) is logged; the rest of a burst
        // from one peer is held back a while.
        XCTAssertTrue(cluster.log("balancer-0-node2").contains("refused Session from 127.0.76.1: bad MAC from node 1"), cluster.log("balancer-0-node2"))
    }

    func testALiveServiceKeepsAnsweringWhileAnotherConnectionFeedsItRandomBytes() throws {
        let cluster = try LocalCluster(subnet: 77, nodes: 1)
        defer { cluster.stop() }
        try cluster.start(.discovery, node: 1)
        let stop = DispatchSemaphore(value: 0)
        let garbage = Thread {
            var sent = 0
            while stop.wait(timeout: .now()) == .timedOut && sent < 200 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(7701).bigEndian)
                inet_pton(AF_INET, "127.0.77.1", &address.sin_addr)
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                let bytes = (0..<65_536).map { _ in UInt8.random(in: 0...255) }
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
                sent += 1
            }
        }
        garbage.start()
        let pinged = cluster.omx(["ping", "discovery", "--node", "1", "--count", "5"])
        stop.signal()
        XCTAssertEqual(pinged.status, 0, pinged.stderr)
        XCTAssertTrue(pinged.stdout.contains("5 pings"), pinged.stdout)
        let after = cluster.omx(["ping", "discovery", "--run-dir", cluster.runDir(1)])
        XCTAssertEqual(after.status, 0, after.stderr)
    }

    func testPingingAServiceThatDoesNotRunSaysWhatFailed() throws {
        let cluster = try LocalCluster(subnet: 78, nodes: 1)
        defer { cluster.stop() }
        let local = cluster.omx(["ping", "migrator", "--run-dir", cluster.dir + "/nowhere"])
        XCTAssertEqual(local.status, 1)
        XCTAssertTrue(local.stderr.contains("UNAVAILABLE"), local.stderr)
        XCTAssertTrue(local.stderr.contains("nowhere/migrator.sock: ENOENT"), local.stderr)
        let remote = cluster.omx(["ping", "migrator", "--node", "1"])
        XCTAssertEqual(remote.status, 1)
        XCTAssertTrue(remote.stderr.contains("connect 127.0.78.1:7703: ECONNREFUSED"), remote.stderr)
    }
}
