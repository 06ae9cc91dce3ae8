import Foundation
import Shared
import XCTest

/// What meets a job while it moves, and what a restart must not forget, on real 3-node local
/// clusters with real CRIU: requests that arrive mid-move, an expel racing a user's move, and
/// a guest's end that its home could not hear of at the time.
final class MigrationRacesEndToEndTests: XCTestCase {
    /// A 3-node cluster whose Balancers move nothing by themselves (`mosctl stay`).
    private func quietCluster(subnet: Int, configText: String? = nil) throws -> DiscoveryCluster {
        let cluster = try DiscoveryCluster(subnet: subnet, nodes: 3, configText: configText)
        for node in 1...3 { XCTAssertEqual(cluster.omx(["mosctl", "stay"], runDir: node).status, 0, "no automatic moves") }
        return cluster
    }

    /// A CRIU that says when a dump begins and takes `seconds` before it.
    private func slowDumpCRIU(in cluster: DiscoveryCluster, marker: String, seconds: Int) throws -> String {
        let path = "\(cluster.dir)/slow-dump-criu"
        try """
            #!/bin/sh
            if [ "$1" = dump ]; then : > '\(marker)'; sleep \(seconds); fi
            exec '\(try XCTUnwrap(DiscoveryCluster.criuPath))' "$@"
            """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func testALockAndASignalSentWhileTheJobMovesReachItWhereItLands() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try quietCluster(subnet: 95)
        // 24 MiB of random memory and node 1 sending at 4 MiB/s: each move takes seconds.
        try await cluster.restartMigrator(1, extra: ["--max-transfer-rate", "4"])
        let job = try cluster.run(MigratorEndToEndTests.ballast)
        try await Task.sleep(for: .milliseconds(500))

        var moving = Task.detached { cluster.omx(["migrate", job, "3"]) }
        var receiving = await cluster.waitFor(seconds: 10) { cluster.log(3, "migrator").contains("receiving job \(job)") }
        XCTAssertNotNil(receiving, "node 3 started receiving")
        let lock = cluster.omx(["lock", job])
        XCTAssertEqual(lock.status, 0, "the lock waits for the move and then applies: \(lock.stderr)")
        var moved = await moving.value
        XCTAssertEqual(moved.status, 0, moved.stderr)
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 3)
        XCTAssertEqual(cluster.job(job)?["lock"] as? Bool, true, "the move's own record did not undo the lock")
        let pinned = cluster.omx(["migrate", job, "2"])
        XCTAssertTrue(pinned.stderr.contains("locked"), "the lock holds where the job landed: \(pinned.stderr)")

        XCTAssertEqual(cluster.omx(["unlock", job]).status, 0)
        try await cluster.restartMigrator(3, extra: ["--max-transfer-rate", "4"])
        moving = Task.detached { cluster.omx(["migrate", job, "2"]) }
        receiving = await cluster.waitFor(seconds: 10) { cluster.log(2, "migrator").contains("receiving job \(job)") }
        XCTAssertNotNil(receiving, "node 2 started receiving")
        let killed = cluster.omx(["kill", job])
        XCTAssertEqual(killed.status, 0, "the signal waits for the move and then goes: \(killed.stderr)")
        moved = await moving.value
        XCTAssertEqual(moved.status, 0, "the move it met went through first: \(moved.stderr)")
        let ended = await cluster.waitForEnd(of: job, seconds: 15)
        XCTAssertEqual(ended?["state"] as? String, "exited", "SIGTERM ended the job on node 2, not a frozen original")
        XCTAssertEqual(ended?["where"] as? Int, 2)
        XCTAssertEqual(cluster.copies(of: job).count, 0, "no copy of the job is left anywhere")
        await cluster.down()
    }

    func testAnExpelThatMeetsAUsersMoveOfTheSameGuestLeavesOneCopy() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try quietCluster(subnet: 96)
        let job = try cluster.run(MigratorEndToEndTests.counter)
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(cluster.omx(["migrate", job, "3"]).status, 0)
        let dumping = "\(cluster.dir)/dumping"
        try await cluster.restartMigrator(3, extra: ["--criu", try slowDumpCRIU(in: cluster, marker: dumping, seconds: 3)])
        // The home's Migrator stopped: the expel's health check of node 1 waits out its second,
        // and meanwhile a user moves the guest to node 2 (its dump takes 3 s).
        let home = try XCTUnwrap(cluster.pid(1, "migrator"))
        kill(home, SIGSTOP)
        defer { kill(home, SIGCONT) }
        let expelling = Task.detached { cluster.omx(["mosctl", "expel"], runDir: 3) }
        let began = await cluster.waitFor(seconds: 10) { cluster.log(3, "migrator").contains("sending the guest jobs away") }
        XCTAssertNotNil(began, "node 3 began the expel")
        let moving = Task.detached { cluster.omx(["migrate", job, "2"], runDir: 3) }
        let dumped = await cluster.waitFor(seconds: 10) { access(dumping, F_OK) == 0 }
        XCTAssertNotNil(dumped, "the user's move began dumping the job: \(cluster.log(3, "migrator").suffix(800))")

        let expel = await expelling.value
        XCTAssertEqual(expel.status, 0, expel.stdout + expel.stderr)
        XCTAssertTrue(expel.stdout.contains("\(job) -> 2"), "the expel found the guest gone to node 2 and did not move it again: \(expel.stdout)")
        // (On a machine slow enough that the expel's own move began first, the user's move
        // waited for it, then found the job on node 2 already, through its home.)
        kill(home, SIGCONT)
        let moved = await moving.value
        XCTAssertTrue(moved.status == 0 || moved.stderr.contains("already runs on node 2"), moved.stderr)
        XCTAssertEqual(cluster.job(job, seenBy: 2)?["where"] as? Int, 2)
        XCTAssertEqual(cluster.copies(of: job).count, 1, "one copy of the job runs")
        XCTAssertEqual(cluster.copies(of: job).filter(\.stopped).count, 0, "and it is not stopped")
        await cluster.killAndCheckCount(of: job)
        await cluster.down()
    }

    func testAGuestThatEndedWhileItsHomeWasDownIsReportedAfterItsNodeRestarts() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try quietCluster(subnet: 97)
        let job = try cluster.run(MigratorEndToEndTests.counter)
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(cluster.omx(["migrate", job, "2"]).status, 0)

        // The home's Migrator is down when the job ends on node 2, and node 2's restarts
        // before the home's is back.
        cluster.kill9(1, "migrator")
        XCTAssertEqual(cluster.omx(["kill", "-KILL", job], runDir: 2).status, 0, "node 2 signals the job it runs")
        let ended = await cluster.waitFor(seconds: 10) { cluster.log(2, "migrator").contains("job \(job) ended") }
        XCTAssertNotNil(ended, "node 2 saw the job end")
        try await cluster.restartMigrator(2)
        try await cluster.restartMigrator(1)
        let record = await cluster.waitForEnd(of: job, seconds: 15)
        XCTAssertEqual(record?["state"] as? String, "exited", "the home learned of the end after node 2's restart: \(record ?? [:])")
        await cluster.down()
    }

    func testAJobOnANodeThatDiedIsLostAndANodeThatStillHoldsItGivesItBack() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try quietCluster(subnet: 98, configText: "[migrator]\nlost_after = 3\n")
        let job = try cluster.run(MigratorEndToEndTests.counter)
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(cluster.omx(["migrate", job, "3"]).status, 0)
        func lost() -> Bool { (cluster.job(job)?["exit"] as? String)?.hasPrefix("lost:") == true }

        // Node 3's Discovery and Migrator die; the job itself runs on: the home's verdict,
        // then node 3 back with the job, which takes its record back.
        cluster.kill9(3, "discovery")
        cluster.kill9(3, "migrator")
        var verdict = await cluster.waitFor(seconds: 30) { lost() }
        XCTAssertNotNil(verdict, "the home recorded the job lost: \(cluster.job(job) ?? [:])")
        XCTAssertEqual(cluster.job(job)?["state"] as? String, "exited", "a waiter learns the job ended")
        XCTAssertEqual(cluster.copies(of: job).count, 1, "the job still ran on node 3 meanwhile")
        let up = cluster.omx(["cluster", "up", "--nodes", "3", "--dir", cluster.dir, "--first-address", "127.0.98.1"])
        XCTAssertEqual(up.status, 0, up.stdout + up.stderr)
        let back = await cluster.waitFor(seconds: 20) { cluster.job(job)?["state"] as? String == "running" }
        XCTAssertNotNil(back, "node 3 gave the job back: \(cluster.job(job) ?? [:])")
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 3)

        // Now node 3 dies whole, its jobs with it.
        for service in ["discovery", "migrator", "balancer"] { cluster.kill9(3, service) }
        for copy in cluster.copies(of: job) { kill(copy.pid, SIGKILL) }
        verdict = await cluster.waitFor(seconds: 30) { lost() }
        XCTAssertNotNil(verdict, "the home recorded the job lost again")
        let exit = cluster.job(job)?["exit"] as? String ?? ""
        XCTAssertTrue(exit.contains("node 3 died"), exit)
        await cluster.down()
    }
}
