import Foundation
import Shared
import XCTest

/// Discovery on real 5-node local clusters: every node a separate set of processes.
final class DiscoveryEndToEndTests: XCTestCase {
    private func allAlive(_ cluster: DiscoveryCluster) async -> Bool {
        for node in 1...cluster.nodes {
            guard let members = await cluster.members(seenBy: node), members.members.allSatisfy({ $0.state == .alive }) else { return false }
        }
        return true
    }

    func testAKilledNodeIsDeadEverywhereWithinThreeSecondsAndRejoinsWithinTwoOfItsRestart() async throws {
        let cluster = try DiscoveryCluster(subnet: 31, nodes: 5)
        let alive = await cluster.waitFor(seconds: 10) { await allAlive(cluster) }
        XCTAssertNotNil(alive, "all 5 nodes alive on every node")

        let seen = await cluster.members(seenBy: 1)
        let before = try XCTUnwrap(seen)
        // A stream of Watch calls, each from the last change seen, until node 3 is no longer alive.
        let watcher = Task {
            var latest = before
            while latest.members.first(where: { $0.id == 3 })?.state == .alive {
                latest = try await cluster.watch(seenBy: 1, after: latest.change, timeoutMs: 10_000)
            }
            return latest
        }
        cluster.kill9(3, "discovery")
        let dead = await cluster.waitFor(seconds: 6) {
            for node in [1, 2, 4, 5] where await cluster.state(of: 3, seenBy: node) != .dead { return false }
            return true
        }
        XCTAssertNotNil(dead, "node 3 dead on every other node")
        XCTAssertLessThan(dead ?? 99, 3.0, "dead everywhere within 3 s")
        let watched = try await watcher.value
        XCTAssertGreaterThan(watched.change, before.change, "Watch answered with the change")
        XCTAssertNotEqual(watched.members.first { $0.id == 3 }?.state, .alive, "Watch reported node 3's suspicion or death")

        let restart = cluster.omx(["cluster", "up", "--nodes", "5", "--dir", cluster.dir, "--first-address", "127.0.31.1", "--timeout", "1"])
        let rejoined = await cluster.waitFor(seconds: 6) {
            for node in [1, 2, 4, 5] where await cluster.state(of: 3, seenBy: node) != .alive { return false }
            return true
        }
        XCTAssertNotNil(rejoined, "node 3 rejoined: \(restart.stdout) \(restart.stderr)")
        XCTAssertLessThan(rejoined ?? 99, 2.0, "alive everywhere within 2 s of the restart")
        XCTAssertTrue(cluster.log(1, "discovery").contains("node 3 is dead"))
        await cluster.down()
    }

    func testNoHealthyNodeIsDeclaredDeadWhileBothCoresAreSaturatedForAMinute() async throws {
        let stressNG = ["/usr/bin/stress-ng", "/bin/stress-ng"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let stressNG else {
            return XCTFail("stress-ng is not installed (scripts/setup.sh installs it); this test cannot run")
        }
        let cluster = try DiscoveryCluster(subnet: 32, nodes: 5)
        let allUp = await cluster.waitFor(seconds: 10) { await allAlive(cluster) }
        XCTAssertNotNil(allUp, "every node alive on every node")
        let stress = try ChildProcess.spawn(stressNG, ["--cpu", "2", "--timeout", "60s", "--quiet"])
        var falseDeaths: [String] = []
        let start = Date()
        while Date().timeIntervalSince(start) < 60 {
            for node in 1...5 {
                for member in await cluster.members(seenBy: node)?.members ?? [] where member.state == .dead {
                    falseDeaths.append("node \(member.id) dead on node \(node) after \(Int(Date().timeIntervalSince(start))) s")
                }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        stress.send(SIGKILL)
        stress.wait()
        XCTAssertEqual(falseDeaths, [])
        for node in 1...5 {
            XCTAssertFalse(cluster.log(node, "discovery").contains(" is dead"), "node \(node) logged a death: \(cluster.log(node, "discovery"))")
        }
        await cluster.down()
    }

    func testANodeStartedWithADifferentMapShowsAsMismatchWithWhatDiffers() async throws {
        let cluster = try DiscoveryCluster(subnet: 33, nodes: 4)
        let allUp = await cluster.waitFor(seconds: 10) { await allAlive(cluster) }
        XCTAssertNotNil(allUp, "every node alive on every node")
        // Node 5 joins with a map that has the same nodes but an extra alias: another digest.
        let otherMap = cluster.dir + "/other.map"
        try "1 127.0.33.1 4\n5 127.0.33.5 1\n5 127.0.34.5 ALIAS\n".write(toFile: otherMap, atomically: true, encoding: .utf8)
        try "1 127.0.33.1 5\n".write(toFile: cluster.mapPath, atomically: true, encoding: .utf8)
        for node in 1...4 {
            let loaded = cluster.omx(["setpe", "-w", "-f", cluster.mapPath], runDir: node)
            XCTAssertEqual(loaded.status, 0, loaded.stderr)
        }
        let runDir = cluster.dir + "/node-5/run"
        let odd = try ChildProcess.spawn(
            siblingExecutable("omx-discovery"), ["--map", otherMap, "--key", cluster.keyPath, "--node-id", "5", "--run-dir", runDir],
            stderrPath: cluster.dir + "/odd.log")
        let shown = await cluster.waitFor(seconds: 8) {
            for node in 1...4 where await cluster.state(of: 5, seenBy: node) != .mismatch { return false }
            return true
        }
        XCTAssertNotNil(shown, "node 5 shows as mismatch on nodes 1-4")
        let view = await cluster.members(seenBy: 2)?.members.first { $0.id == 5 }
        XCTAssertTrue(view?.mismatch.contains("map digest") ?? false, view?.mismatch ?? "")
        XCTAssertEqual(view?.liveness, .alive)
        let status = cluster.omx(["status", "--json"], runDir: 1)
        XCTAssertTrue(status.stdout.contains("\"state\" : \"mismatch\""), status.stdout)

        // An instance registered on the mismatched node is left out of the others' Lookup.
        let loop = try EventLoop()
        let local = RPCClient(loop: loop, endpoint: .unix(path: runDir + "/discovery.sock"), logger: .init(label: "test"))
        let instance = ServiceInstance(kind: "migrator", instance: 0, nodeID: 5, address: "127.0.33.5", port: 7703, unixPath: "", pid: 1)
        _ = try await local.call("Discovery.Register", ServiceLease(instance: instance, leaseMs: 30_000), returning: ServiceLease.self)
        let gossiped = await cluster.waitFor(seconds: 5) {
            await cluster.members(seenBy: 1)?.members.first { $0.id == 5 }?.services.count == 1
        }
        XCTAssertNotNil(gossiped, "node 1 heard of node 5's instance")
        let migrators = await cluster.lookup("migrator", seenBy: 1) ?? []
        XCTAssertFalse(migrators.contains { $0.nodeID == 5 }, "a mismatched node's services are not offered: \(migrators)")
        await local.close()
        await loop.shutdown()
        odd.send(SIGKILL)
        odd.wait()
        await cluster.down()
    }

    func testARegisteredInstanceIsFoundOnEveryNodeAndVanishesWhenItsProcessDies() async throws {
        let cluster = try DiscoveryCluster(subnet: 35, nodes: 3, gateways: 2)
        let registered = await cluster.waitFor(seconds: 10) {
            for node in 1...3 where (await cluster.lookup("fsgateway", seenBy: node) ?? []).count != 6 { return false }
            return true
        }
        XCTAssertNotNil(registered, "2 gateways on each of 3 nodes, found by Lookup on every node")
        let found = await cluster.lookup("fsgateway", seenBy: 3) ?? []
        XCTAssertTrue(found.contains { $0.nodeID == 2 && $0.instance == 1 && $0.port == 7711 && $0.address == "127.0.35.2" }, "\(found)")

        cluster.kill9(2, "fsgateway-1")
        let vanished = await cluster.waitFor(seconds: 10) {
            for node in 1...3 {
                let instances = await cluster.lookup("fsgateway", seenBy: node) ?? []
                if instances.count != 5 || instances.contains(where: { $0.nodeID == 2 && $0.instance == 1 }) { return false }
            }
            return true
        }
        XCTAssertNotNil(vanished, "the killed instance is gone from every node's Lookup")
        XCTAssertLessThan(vanished ?? 99, 6, "within its 3 s lease and a few rounds of gossip")
        await cluster.down()
    }

    func testSetpeReadsLoadsAndLeavesAndStatusShowsIt() async throws {
        let cluster = try DiscoveryCluster(subnet: 36, nodes: 3)
        let allUp = await cluster.waitFor(seconds: 10) { await allAlive(cluster) }
        XCTAssertNotNil(allUp, "every node alive on every node")
        let read = cluster.omx(["setpe", "-r"], runDir: 2)
        XCTAssertEqual(read.status, 0, read.stderr)
        XCTAssertTrue(read.stdout.contains("1 127.0.36.1 3"), read.stdout)

        let bad = cluster.dir + "/bad.map"
        try "1 127.0.36.1 3\n4 127.0.36.2 1\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = cluster.omx(["setpe", "-w", "-f", bad], runDir: 2)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("\(bad):2: address 127.0.36.2 is given twice"), refused.stderr)

        let off = cluster.omx(["setpe", "-off"], runDir: 3)
        XCTAssertEqual(off.status, 0, off.stderr)
        let left = await cluster.waitFor(seconds: 3) {
            for node in [1, 2] where await cluster.state(of: 3, seenBy: node) != .left { return false }
            return true
        }
        XCTAssertNotNil(left, "node 3 left, on nodes 1 and 2")

        let back = cluster.omx(["setpe", "-w", "-f", cluster.mapPath], runDir: 3)
        XCTAssertEqual(back.status, 0, back.stderr)
        let joined = await cluster.waitFor(seconds: 3) { await allAlive(cluster) }
        XCTAssertNotNil(joined, "node 3 joined again")

        let status = cluster.omx(["status"], runDir: 1)
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertTrue(status.stdout.hasPrefix("ID  ADDRESS"), status.stdout)
        let json = cluster.omx(["status", "--json"], runDir: 1)
        let rows = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(rows?.map { $0["id"] as? Int }, [1, 2, 3])
        XCTAssertEqual(rows?.map { $0["state"] as? String }, ["alive", "alive", "alive"])
        XCTAssertEqual(rows?.first?["address"] as? String, "127.0.36.1")
        await cluster.down()
    }

    func testClusterDownLeavesNothingRunning() async throws {
        let cluster = try DiscoveryCluster(subnet: 37, nodes: 3)
        let pids = (1...3).flatMap { node in ["discovery", "balancer", "migrator", "fsgateway-0"].compactMap { cluster.pid(node, $0) } }
        XCTAssertEqual(pids.count, 12)
        // `cluster up` returned once node 1's Discovery listed every service of every node.
        let json = cluster.omx(["status", "--json"], runDir: 1)
        let rows = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        let kinds = rows?.map { (($0["services"] as? [[String: Any]]) ?? []).compactMap { $0["kind"] as? String }.sorted() }
        XCTAssertEqual(kinds, Array(repeating: ["balancer", "fsgateway", "migrator"], count: 3), json.stdout)
        await cluster.down()
        for pid in pids { XCTAssertNotEqual(kill(pid, 0), 0, "pid \(pid) still runs") }
    }
}
