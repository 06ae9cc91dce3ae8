import Foundation
import Shared
import XCTest

/// The Balancer on a real 3-node local cluster: no command given, jobs spread by themselves;
/// mosctl policies; omx mon in a real terminal.
final class BalancerEndToEndTests: XCTestCase {
    static let busy = ["/bin/sh", "-c", "while :; do :; done"]

    /// How many running jobs each node holds, as `omx mps` shows them.
    private func spread(_ cluster: DiscoveryCluster) -> [Int: Int] {
        var counts: [Int: Int] = [1: 0, 2: 0, 3: 0]
        for job in cluster.jobs() where job["state"] as? String == "running" {
            if let node = job["where"] as? Int { counts[node, default: 0] += 1 }
        }
        return counts
    }

    func testSixBusyJobsSpreadTwoPerNodeAndPoliciesHold() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 46, nodes: 3)
        let jobs = try (0..<6).map { _ in try cluster.run(BalancerEndToEndTests.busy, options: ["--node", "1"]) }
        XCTAssertEqual(spread(cluster)[1], 6, "all six start on node 1")
        let spreadIn = await cluster.waitFor(seconds: 20) { self.spread(cluster) == [1: 2, 2: 2, 3: 2] }
        XCTAssertNotNil(spreadIn, "two per node within 20 s, with no command given: \(spread(cluster))")
        try await Task.sleep(for: .seconds(3))
        XCTAssertEqual(spread(cluster), [1: 2, 2: 2, 3: 2], "and it stays so")
        XCTAssertTrue(cluster.log(1, "balancer").contains("move job 1."), "decisions are logged")
        XCTAssertTrue(cluster.log(1, "balancer").contains("load: "), "with their reasons")

        // block on node 2: three more jobs spread to nodes 1 and 3 only.
        var result = cluster.omx(["mosctl", "block"], runDir: 2)
        XCTAssertEqual(result.status, 0, result.stderr)
        let onTwo = Set(cluster.jobs().filter { $0["where"] as? Int == 2 }.compactMap { $0["job"] as? String })
        let more = try (0..<3).map { _ in try cluster.run(BalancerEndToEndTests.busy) }
        let settled = await cluster.waitFor(seconds: 20) { self.spread(cluster)[3] == 3 || self.spread(cluster)[3] == 4 }
        XCTAssertNotNil(settled, "the new load went to node 3: \(spread(cluster))")
        try await Task.sleep(for: .seconds(2))
        XCTAssertEqual(Set(cluster.jobs().filter { $0["where"] as? Int == 2 }.compactMap { $0["job"] as? String }), onTwo, "no new guest on node 2")
        result = cluster.omx(["migrate", more[0], "2"])
        XCTAssertTrue(result.stderr.contains("node 2 blocks guest jobs"), result.stderr)
        XCTAssertTrue(cluster.omx(["mosctl", "status"], runDir: 2).stdout.contains("policy block"))

        // expel on node 3: its guests go home and stay away.
        result = cluster.omx(["mosctl", "expel"], runDir: 3)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("blocked; sent away"), result.stdout)
        XCTAssertEqual(spread(cluster)[3], 0, "node 3 has no guests left")
        try await Task.sleep(for: .seconds(4))
        XCTAssertEqual(spread(cluster)[3], 0, "and none came back")

        // bring on node 1: every job of node 1 comes home.
        result = cluster.omx(["mosctl", "bring"])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertEqual(spread(cluster), [1: 9, 2: 0, 3: 0], "all nine jobs are home")
        try await Task.sleep(for: .seconds(4))
        XCTAssertEqual(spread(cluster)[1], 9, "and stay there (bring sets lstay)")
        XCTAssertEqual(Set(cluster.jobs().compactMap { $0["job"] as? String }), Set(jobs + more))

        // A user may not change the policy.
        let denied = LocalCluster.runAbsolute("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "OMX_RUN_DIR=\(cluster.runDir(1))", siblingExecutable("omx"), "mosctl", "nolstay",
        ])
        XCTAssertNotEqual(denied.status, 0)
        XCTAssertTrue(denied.stderr.contains("only root"), denied.stderr)
        await cluster.down()
    }

    func testLockPinsAJobAgainstTheBalancerAndMigrate() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 47, nodes: 3)
        let pinned = try cluster.run(BalancerEndToEndTests.busy, options: ["--lock"])
        let second = try cluster.run(BalancerEndToEndTests.busy, options: ["--node", "1"])
        let third = try cluster.run(BalancerEndToEndTests.busy, options: ["--node", "1"])
        XCTAssertEqual(cluster.omx(["lock", second]).status, 0)
        let moved = await cluster.waitFor(seconds: 15) { cluster.job(third)?["where"] as? Int != 1 }
        XCTAssertNotNil(moved, "the unlocked job moves")
        XCTAssertEqual(cluster.job(pinned)?["where"] as? Int, 1, "omx run --lock pins it")
        XCTAssertEqual(cluster.job(second)?["where"] as? Int, 1, "omx lock pins it")
        XCTAssertTrue(cluster.omx(["migrate", second, "2"]).stderr.contains("the job is locked"))
        // Node 1's jobs stay from now on, so the Balancer does not move the unlocked job first.
        XCTAssertEqual(cluster.omx(["mosctl", "stay"]).status, 0)
        XCTAssertEqual(cluster.omx(["unlock", second]).status, 0)
        let migrated = cluster.omx(["migrate", second, "2"])
        XCTAssertEqual(migrated.status, 0, "unlocked, it moves: \(migrated.stderr)")
        XCTAssertEqual(cluster.job(second)?["where"] as? Int, 2)
        await cluster.down()
    }

    func testExpelAlsoSendsAwayAGuestThatWasBeingRestoredWhenItBeganAndAdmitsNoOther() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 92, nodes: 3)
        for node in 1...3 { XCTAssertEqual(cluster.omx(["mosctl", "stay"], runDir: node).status, 0, "no automatic moves") }
        // Node 3's CRIU says when a restore begins and takes 4 s over it: the expel comes then.
        let restoring = "\(cluster.dir)/restoring"
        let slowCRIU = "\(cluster.dir)/slow-criu"
        try """
            #!/bin/sh
            if [ "$1" = restore ]; then : > '\(restoring)'; sleep 4; fi
            exec '\(try XCTUnwrap(DiscoveryCluster.criuPath))' "$@"
            """.write(toFile: slowCRIU, atomically: true, encoding: .utf8)
        chmod(slowCRIU, 0o755)
        try await cluster.restartMigrator(3, extra: ["--criu", slowCRIU])
        let job = try cluster.run(BalancerEndToEndTests.busy, options: ["--node", "1"])
        let other = try cluster.run(BalancerEndToEndTests.busy, options: ["--node", "1"])
        let migrating = Task.detached { cluster.omx(["migrate", job, "3"]) }
        let begun = await cluster.waitFor(seconds: 20) { access(restoring, F_OK) == 0 }
        XCTAssertNotNil(begun, "node 3 began restoring the guest: \(cluster.log(3, "migrator").suffix(800))")

        let expelling = Task.detached { cluster.omx(["mosctl", "expel"], runDir: 3) }
        let sending = await cluster.waitFor(seconds: 10) { cluster.log(3, "migrator").contains("sending the guest jobs away") }
        XCTAssertNotNil(sending, "node 3's Migrator began the expel")
        let refused = cluster.omx(["migrate", other, "3"])
        XCTAssertTrue(refused.stderr.contains("node 3 is sending its guest jobs away"), "no guest is admitted during an expel: \(refused.stderr)")
        let expel = await expelling.value
        XCTAssertEqual(expel.status, 0, expel.stdout + expel.stderr)
        XCTAssertTrue(expel.stdout.contains("sent away 1 job(s): \(job) -> 1"), "the guest restored meanwhile went home: \(expel.stdout)")
        let migrated = await migrating.value
        XCTAssertEqual(migrated.status, 0, "the migration it interrupted went through first: \(migrated.stderr)")
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 1, "the job runs at home")
        XCTAssertEqual(cluster.copies(of: job).count, 1, "and nowhere else")
        XCTAssertEqual(cluster.job(other)?["where"] as? Int, 1, "the one refused runs on where it was")
        let blocked = cluster.omx(["migrate", job, "3"])
        XCTAssertTrue(blocked.stderr.contains("node 3 blocks guest jobs"), "after the expel the node stays blocked: \(blocked.stderr)")
        await cluster.down()
    }

    func testAJobWhoseFilesAreOnAnotherNodeMovesThere() async throws {
        try DiscoveryCluster.requireCRIU()
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 67, nodes: 3)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 3)
        XCTAssertTrue(isMounted)
        let data = "\(cluster.dir)/data.bin"
        try Data(count: 2 << 20).write(to: URL(fileURLWithPath: data))
        // Reads node 3's file through /mfs/3 over and over, from node 1.
        let job = try cluster.run(["/usr/bin/python3", "-c", """
            import time
            while True:
                with open("\(cluster.dir)/node-1/mfs/3\(data)", "rb") as f:
                    f.read()
                time.sleep(0.1)
            """], options: ["--node", "1"])
        let moved = await cluster.waitFor(seconds: 30) { cluster.job(job)?["where"] as? Int == 3 }
        XCTAssertNotNil(moved, "the job moved to node 3, where its data is: \(cluster.log(1, "balancer").suffix(800))")
        XCTAssertTrue(cluster.log(1, "balancer").contains("I/O locality"), "with the reason logged")
        try await Task.sleep(for: .seconds(6))
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 3, "and stays by its data")
    }

    func testANewJobStartsWhereTheBalancerPlacesIt() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 49, nodes: 3)
        for _ in 0..<4 { _ = try cluster.run(BalancerEndToEndTests.busy, options: ["--node", "1"]) }
        // Wait until node 1's load shows and the others' records have reached it.
        let loaded = await cluster.waitFor(seconds: 10) {
            cluster.omx(["mosctl", "getload"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines).compare("2.5", options: .numeric) == .orderedDescending
        }
        XCTAssertNotNil(loaded, "node 1 is loaded")
        XCTAssertEqual(cluster.omx(["mosctl", "stay"]).status, 0, "nothing moves automatically from node 1 now")
        let placed = try cluster.run(BalancerEndToEndTests.busy)
        XCTAssertNotEqual(cluster.job(placed)?["where"] as? Int, 1, "omx run without --node starts it on a lighter node")
        XCTAssertTrue(cluster.log(1, "balancer").contains("start a new job on node"), "with the reason logged")
        let home = try cluster.run(BalancerEndToEndTests.busy, options: ["--stay"])
        XCTAssertEqual(cluster.job(home)?["where"] as? Int, 1, "--stay starts it at home")
        await cluster.down()
    }

    func testMonShowsEveryNodeInAnEightyByTwentyFourTerminalAndQuitsOnQ() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else {
            return XCTFail("tmux is not installed (scripts/setup.sh installs it); omx mon cannot be driven")
        }
        let cluster = try DiscoveryCluster(subnet: 48, nodes: 3)
        let session = "omx-mon-\(getpid())"
        // tmux's server outlives the command: its output goes to a file, not a pipe to wait on.
        let output = "\(cluster.dir)/tmux.out"
        let tmux = { (arguments: [String]) -> CommandResult in
            unlink(output)
            guard let process = try? ChildProcess.spawn("/usr/bin/tmux", arguments, stdoutPath: output, stderrPath: output) else {
                return CommandResult(status: -1, stdout: "", stderr: "cannot start tmux")
            }
            let status = process.wait()
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            return CommandResult(status: status, stdout: text, stderr: text)
        }
        let command = "OMX_RUN_DIR=\(cluster.runDir(1)) OMX_MAP=\(cluster.mapPath) OMX_KEY=\(cluster.keyPath) \(siblingExecutable("omx")) mon"
        XCTAssertEqual(tmux(["new-session", "-d", "-s", session, "-x", "80", "-y", "24", command]).status, 0)
        let shown = await cluster.waitFor(seconds: 10) {
            let screen = tmux(["capture-pane", "-p", "-t", session]).stdout
            return screen.contains("node 1") && screen.contains("node 2") && screen.contains("node 3")
        }
        let screen = tmux(["capture-pane", "-p", "-t", session]).stdout
        XCTAssertNotNil(shown, "every node on screen:\n\(screen)")
        XCTAssertTrue(screen.split(separator: "\n").allSatisfy { $0.count <= 80 }, "fits 80 columns")
        XCTAssertTrue(screen.contains("view: load"))
        _ = tmux(["send-keys", "-t", session, "m"])
        let memory = await cluster.waitFor(seconds: 5) { tmux(["capture-pane", "-p", "-t", session]).stdout.contains("view: memory") }
        XCTAssertNotNil(memory, "m switches to the memory view")
        _ = tmux(["send-keys", "-t", session, "q"])
        let quit = await cluster.waitFor(seconds: 5) { tmux(["has-session", "-t", session]).status != 0 }
        XCTAssertNotNil(quit, "q quits")
        if quit == nil { _ = tmux(["kill-session", "-t", session]) }
        await cluster.down()
    }
}
