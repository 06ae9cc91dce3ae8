import Foundation
import Shared
import XCTest

/// The Migrator on real 3-node local clusters: real jobs in PID namespaces, real CRIU
/// checkpoints, images streamed between real Migrator processes.
final class MigratorEndToEndTests: XCTestCase {
    static let counter = ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done"]
    /// A counter holding 24 MiB of random memory, so that a rate-capped move takes seconds.
    static let ballast = ["/usr/bin/python3", "-c", """
        import os, time
        memory = bytearray(os.urandom(24 << 20))
        i = 0
        while True:
            i += 1
            print(i, flush=True)
            memory[(i * 4096) % len(memory)] = 1
            time.sleep(0.02)
        """]

    func testACounterMigratedOneTwoThreeHomeKeepsEveryNumberOnceAndRunsOnceAtEveryMoment() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 40, nodes: 3)
        let job = try cluster.run(MigratorEndToEndTests.counter)
        let firstPID = try XCTUnwrap(cluster.job(job)?["pid"] as? Int)
        // Sample the job's copies all along: never two running, never none at all.
        let sampling = Task.detached { () -> [String] in
            var problems: [String] = []
            while !Task.isCancelled {
                let copies = cluster.copies(of: job)
                if copies.filter({ !$0.stopped }).count > 1 { problems.append("two running copies: \(copies)") }
                if copies.isEmpty { problems.append("no copy at all") }
                usleep(5_000)
            }
            return problems
        }
        var pids: Set<Int> = [firstPID]
        XCTAssertEqual(cluster.copies(of: job).count, 1, "the sampler sees the job")
        // The moves follow each other at once: the home must know where its job went before
        // the source's own report arrives, or it would forward the next move to the old node.
        try await Task.sleep(for: .milliseconds(400))
        for target in ["2", "3", "home"] {
            let moved = cluster.omx(["migrate", job, target])
            XCTAssertEqual(moved.status, 0, "migrate to \(target): \(moved.stderr)")
            XCTAssertTrue(moved.stdout.contains("frozen"), moved.stdout)
            let record = try XCTUnwrap(cluster.job(job))
            XCTAssertEqual(record["where"] as? Int, target == "home" ? 1 : Int(target), "omx mps shows where the job runs")
            XCTAssertEqual(record["state"] as? String, "running")
            if let pid = record["pid"] as? Int { pids.insert(pid) }
        }
        try await Task.sleep(for: .milliseconds(400))
        sampling.cancel()
        let problems = await sampling.value
        XCTAssertEqual(problems.first, nil, "exactly one copy at every moment (\(problems.count) bad samples)")
        XCTAssertEqual(pids.count, 4, "the host pid changed with every move: \(pids)")
        XCTAssertEqual(cluster.job(job, seenBy: 3)?["where"] as? Int, 1, "every node's mps agrees")

        let killed = cluster.omx(["kill", job], runDir: 2)
        XCTAssertEqual(killed.status, 0, killed.stderr)
        let ended = await cluster.waitForEnd(of: job)
        XCTAssertEqual(ended?["exit"] as? String, "signal 15", "omx kill from node 2 reached the job")
        assertCountsUp(cluster.output(of: job))
        let logs = cluster.omx(["logs", job], runDir: 3)
        XCTAssertEqual(logs.stdout, cluster.output(of: job), "omx logs from node 3 shows the job's output")
        XCTAssertTrue(cluster.copies(of: job).isEmpty)
        await cluster.down()
    }

    func testACallRightAfterAMoveTheHomeDidNotMakeFollowsTheJob() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 63, nodes: 3)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        // A job of node 1 running on node 2, moved to node 3 by node 2 itself (as its Balancer
        // would): the home hears of it only with node 3's next report.
        let job = try cluster.run(MigratorEndToEndTests.counter, options: ["--node", "2"])
        try await Task.sleep(for: .milliseconds(300))
        let moved = cluster.omx(["migrate", job, "3"], runDir: 2)
        XCTAssertEqual(moved.status, 0, moved.stderr)
        // At once, from the home: node 2 forwards the call to where the job went.
        let stopped = cluster.omx(["kill", "-STOP", job])
        XCTAssertEqual(stopped.status, 0, "the home's forward to node 2 follows the job to node 3: \(stopped.stderr)")
        let killed = cluster.omx(["kill", "-KILL", job])
        XCTAssertEqual(killed.status, 0, killed.stderr)
        let ended = await cluster.waitForEnd(of: job)
        XCTAssertEqual(ended?["exit"] as? String, "signal 9")
        XCTAssertEqual(ended?["where"] as? Int, 3)
    }

    func testAMigrateArrivingWhileTheJobMovesWaitsForThatMoveAndFollowsIt() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 64, nodes: 3)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        // 24 MiB of random memory and node 1 sending at 4 MiB/s: the first move takes seconds.
        try await cluster.restartMigrator(1, extra: ["--max-transfer-rate", "4"])
        let job = try cluster.run(MigratorEndToEndTests.ballast)
        try await Task.sleep(for: .milliseconds(500))
        let first = Task.detached { cluster.omx(["migrate", job, "3"]) }
        let receiving = await cluster.waitFor(seconds: 10) { cluster.log(3, "migrator").contains("receiving job \(job)") }
        XCTAssertNotNil(receiving, "node 3 started receiving")
        // As a user's migrate would meet the Balancer's: the second request waits, then follows.
        let second = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(second.status, 0, "the second move waits for the first and then goes on: \(second.stderr)")
        let firstResult = await first.value
        XCTAssertEqual(firstResult.status, 0, firstResult.stderr)
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 2, "the job ends where the last request sent it")
        XCTAssertEqual(cluster.copies(of: job).count, 1, "and runs once")
        let before = cluster.output(of: job).count
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertGreaterThan(cluster.output(of: job).count, before, "it carries on")
    }

    func testEveryFailedMigrationLeavesTheJobRunningWhereItWasAndSaysWhy() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 41, nodes: 3)
        let job = try cluster.run(MigratorEndToEndTests.ballast)
        func assertStillOnNodeOne(_ what: String, pid: Int) async {
            let record = cluster.job(job)
            XCTAssertEqual(record?["where"] as? Int, 1, "\(what): the job stays on node 1")
            XCTAssertEqual(record?["state"] as? String, "running", what)
            XCTAssertEqual(record?["pid"] as? Int, pid, "\(what): the same process runs on")
            XCTAssertEqual(cluster.copies(of: job).count, 1, "\(what): exactly one copy")
            let before = cluster.output(of: job).count
            try? await Task.sleep(for: .milliseconds(300))
            XCTAssertGreaterThan(cluster.output(of: job).count, before, "\(what): the job carries on")
        }
        try await Task.sleep(for: .milliseconds(500))
        let pid = try XCTUnwrap(cluster.job(job)?["pid"] as? Int)

        // A chunk damaged in transit (the source's fault hook): the target's CRC check refuses it.
        try await cluster.restartMigrator(1, environment: ["OMX_MIGRATOR_FAULT": "corrupt-chunk"])
        XCTAssertEqual(cluster.job(job)?["pid"] as? Int, pid, "the restarted Migrator re-adopted the running job")
        var result = cluster.omx(["migrate", job, "2"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("checksum mismatch"), result.stderr)
        XCTAssertTrue(result.stderr.contains("the job runs on at node 1"), result.stderr)
        await assertStillOnNodeOne("corrupted chunk", pid: pid)

        // A restore that fails on the target.
        try await cluster.restartMigrator(1)
        let failingCRIU = "\(cluster.dir)/failing-criu"
        try """
            #!/bin/sh
            if [ "$1" = restore ]; then echo "Error (test): this criu refuses to restore" >&2; exit 1; fi
            exec \(try XCTUnwrap(DiscoveryCluster.criuPath)) "$@"
            """.write(toFile: failingCRIU, atomically: true, encoding: .utf8)
        chmod(failingCRIU, 0o755)
        try await cluster.restartMigrator(2, extra: ["--criu", failingCRIU])
        result = cluster.omx(["migrate", job, "2"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("restore on node 2 failed"), result.stderr)
        XCTAssertTrue(result.stderr.contains("this criu refuses to restore"), result.stderr)
        await assertStillOnNodeOne("failed restore", pid: pid)

        // The target Migrator killed mid-transfer (the source capped at 4 MiB/s: about 6 s to send).
        try await cluster.restartMigrator(1, extra: ["--max-transfer-rate", "4"])
        let migrating = Task.detached { cluster.omx(["migrate", job, "3"]) }
        let receiving = await cluster.waitFor(seconds: 10) { cluster.log(3, "migrator").contains("receiving job \(job)") }
        XCTAssertNotNil(receiving, "node 3 started receiving")
        try await Task.sleep(for: .milliseconds(500))
        cluster.kill9(3, "migrator")
        result = await migrating.value
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("UNAVAILABLE") || result.stderr.contains("connection"), result.stderr)
        XCTAssertTrue(result.stderr.contains("the job runs on at node 1"), result.stderr)
        await assertStillOnNodeOne("target killed mid-transfer", pid: pid)

        // The source Migrator restarted right after a migration.
        try await cluster.restartMigrator(3)
        try await cluster.restartMigrator(2)
        try await cluster.restartMigrator(1)
        result = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        try await cluster.restartMigrator(1)
        try await Task.sleep(for: .seconds(1))
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 2, "after the source's restart the job is on node 2")
        XCTAssertEqual(cluster.copies(of: job).count, 1, "and nowhere else")
        let before = cluster.output(of: job).count
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertGreaterThan(cluster.output(of: job).count, before, "it carries on")

        await cluster.killAndCheckCount(of: job)
        await cluster.down()
    }

    func testAJobItsUserStoppedStaysStoppedWhereverItMoves() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 99, nodes: 2)
        for node in 1...2 { XCTAssertEqual(cluster.omx(["mosctl", "stay"], runDir: node).status, 0, "no automatic moves") }
        let job = try cluster.run(MigratorEndToEndTests.counter)
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(cluster.omx(["kill", "-STOP", job]).status, 0)
        try await Task.sleep(for: .milliseconds(200))
        let moved = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(moved.status, 0, moved.stderr)
        XCTAssertEqual(cluster.copies(of: job).map(\.stopped), [true], "the moved copy is still stopped")
        let before = cluster.output(of: job).count
        try await Task.sleep(for: .milliseconds(400))
        XCTAssertEqual(cluster.output(of: job).count, before, "and writes nothing")
        XCTAssertEqual(cluster.omx(["kill", "-CONT", job]).status, 0)
        let resumed = await cluster.waitFor(seconds: 5) { cluster.output(of: job).count > before }
        XCTAssertNotNil(resumed, "SIGCONT resumes it on node 2")
        await cluster.killAndCheckCount(of: job)
        await cluster.down()
    }

    func testThreadsPythonAndAPipelineFinishWithTheOutputOfAnUnmigratedRun() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 42, nodes: 3)
        let source = "\(cluster.dir)/threads.c"
        try """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            static unsigned long long sums[4];
            static void *work(void *argument) {
                long index = (long)argument;
                unsigned long long sum = 0;
                for (unsigned long long i = 0; i < 200; i++) {
                    for (unsigned long long j = 0; j < 100000; j++) sum = sum * 6364136223846793005ULL + i * j + index;
                    struct timespec pause = {0, 10 * 1000 * 1000};
                    nanosleep(&pause, NULL);
                }
                sums[index] = sum;
                return NULL;
            }
            int main(void) {
                pthread_t threads[4];
                for (long i = 0; i < 4; i++) pthread_create(&threads[i], NULL, work, (void *)i);
                for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
                for (int i = 0; i < 4; i++) printf("thread %d: %llu\\n", i, sums[i]);
                return 0;
            }
            """.write(toFile: source, atomically: true, encoding: .utf8)
        let compiled = LocalCluster.runAbsolute("/usr/bin/gcc", ["-O1", "-pthread", "-o", "\(cluster.dir)/threads", source])
        XCTAssertEqual(compiled.status, 0, compiled.stderr)
        let programs: [(String, [String])] = [
            ("a multi-threaded C program", ["\(cluster.dir)/threads"]),
            ("a Python script", ["/usr/bin/python3", "-c", """
                import hashlib, time
                digest = b"omx"
                for round in range(150):
                    digest = hashlib.sha256(digest).digest()
                    if round % 30 == 0:
                        print(round, digest.hex(), flush=True)
                    time.sleep(0.015)
                print("done", digest.hex())
                """]),
            ("a shell pipeline", ["/bin/sh", "-c", "for i in $(seq 1 150); do echo $i; sleep 0.015; done | awk '{ s += $1; print s }' | sort -n | tail -3"]),
        ]
        for (what, command) in programs {
            let unmigrated = LocalCluster.runAbsolute(command[0], Array(command.dropFirst()))
            XCTAssertEqual(unmigrated.status, 0, "\(what) runs: \(unmigrated.stderr)")
            let job = try cluster.run(command)
            try await Task.sleep(for: .milliseconds(700))
            let moved = cluster.omx(["migrate", job, "2"])
            XCTAssertEqual(moved.status, 0, "\(what) migrates mid-run: \(moved.stderr)")
            XCTAssertEqual(cluster.job(job)?["where"] as? Int, 2)
            let ended = await cluster.waitForEnd(of: job)
            XCTAssertEqual(ended?["exit"] as? String, "exit 0", "\(what) ended well: \(cluster.omx(["logs", "--stderr", job]).stdout)")
            XCTAssertEqual(cluster.output(of: job), unmigrated.stdout, "\(what) printed what an unmigrated run prints")
        }
        await cluster.down()
    }

    func testAJobHoldingAConnectionIsCantmoveAndStaysPut() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 43, nodes: 3)
        let listener = try ChildProcess.spawn("/usr/bin/python3", ["-c", """
            import socket, time
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.43.1", 7799))
            server.listen()
            connection, _ = server.accept()
            time.sleep(60)
            """])
        defer { listener.send(SIGKILL); listener.wait() }
        try await Task.sleep(for: .milliseconds(300))
        let job = try cluster.run(["/usr/bin/python3", "-c", """
            import socket, time
            connection = socket.create_connection(("127.0.43.1", 7799))
            while True:
                time.sleep(0.1)
            """])
        let flagged = await cluster.waitFor(seconds: 5) { (cluster.job(job)?["cantmove"] as? String)?.contains("TCP socket") == true }
        XCTAssertNotNil(flagged, "mps shows why the job cannot move: \(cluster.omx(["mps"]).stdout)")
        XCTAssertTrue(cluster.omx(["mps"]).stdout.contains("cantmove: "), "the table says cantmove")
        let result = cluster.omx(["migrate", job, "2"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("cantmove: pid"), result.stderr)
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 1, "the job stays put")
        XCTAssertEqual(cluster.copies(of: job).filter { !$0.stopped }.count, 1, "and was never frozen")
        await cluster.down()
    }

    func testExpelAndAStoppingMigratorSendGuestsAway() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 44, nodes: 3)
        let guests = try (0..<2).map { _ in try cluster.run(MigratorEndToEndTests.counter, options: ["--node", "2"]) }
        for guest in guests { XCTAssertEqual(cluster.job(guest)?["where"] as? Int, 2, "--node 2 started it on node 2") }
        let expel = cluster.omx(["mosctl", "expel"], runDir: 2)
        XCTAssertEqual(expel.status, 0, expel.stderr)
        for guest in guests {
            XCTAssertTrue(expel.stdout.contains("\(guest) -> 1"), expel.stdout)
            XCTAssertEqual(cluster.job(guest)?["where"] as? Int, 1, "expel sent \(guest) home")
        }
        XCTAssertTrue(cluster.omx(["mosctl", "expel"], runDir: 2).stdout.contains("sent away 0 job(s)"))
        XCTAssertEqual(cluster.omx(["mosctl", "noblock"], runDir: 2).status, 0, "expel blocked node 2; open it again")

        // A Migrator stopped with SIGTERM sends its guests away first; home 1 is down, so elsewhere.
        let guest = try cluster.run(MigratorEndToEndTests.counter, from: 1, options: ["--node", "3"])
        kill(try XCTUnwrap(cluster.pid(1, "migrator")), SIGKILL)
        kill(try XCTUnwrap(cluster.pid(3, "migrator")), SIGTERM)
        let movedAway = await cluster.waitFor(seconds: 20) { cluster.copies(of: guest).contains { !$0.stopped } && cluster.log(3, "migrator").contains("expelled 1 of 1") }
        XCTAssertNotNil(movedAway, cluster.log(3, "migrator").suffix(800).description)
        try await cluster.restartMigrator(1)
        XCTAssertEqual(cluster.job(guest)?["where"] as? Int, 2, "the guest went to node 2 while its home was down")
        XCTAssertEqual(cluster.copies(of: guest).count, 1)
        await cluster.down()
    }

    func testRunWaitsLogsAndRefusesBadRequestsClearly() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 45, nodes: 3)
        var result = cluster.omx(["run", "--wait", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
        XCTAssertEqual(result.status, 3, "--wait exits with the job's status: \(result.stderr)")
        let job = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(job.hasPrefix("1."), job)
        XCTAssertEqual(cluster.omx(["logs", job], runDir: 2).stdout, "out\n")
        XCTAssertEqual(cluster.omx(["logs", "--stderr", job], runDir: 3).stdout, "err\n")

        // The job runs as the caller: uid, gid, cwd and environment.
        let user = LocalCluster.runAbsolute("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c",
            "cd /tmp && JOB_COLOR=blue OMX_RUN_DIR=\(cluster.runDir(1)) exec \(siblingExecutable("omx")) run --wait -- /bin/sh -c 'id -u; id -g; pwd; echo $JOB_COLOR'",
        ])
        XCTAssertEqual(user.status, 0, user.stderr)
        let userJob = user.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(cluster.output(of: userJob), "65534\n65534\n/tmp\nblue\n")

        result = cluster.omx(["run", "--", "no-such-program-omx"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("no-such-program-omx: command not found"), result.stderr)
        result = cluster.omx(["run", "--node", "9", "--", "/bin/true"])
        XCTAssertTrue(result.stderr.contains("node 9 is not in the map"), result.stderr)
        result = cluster.omx(["kill", "1.999"])
        XCTAssertTrue(result.stderr.contains("has no job 1.999"), result.stderr)
        result = cluster.omx(["migrate", "nonsense", "2"])
        XCTAssertTrue(result.stderr.contains("\"nonsense\" is not a job id"), result.stderr)
        result = cluster.omx(["kill", "-NOPE", job])
        XCTAssertTrue(result.stderr.contains("unknown signal -NOPE"), result.stderr)

        // Another user may not touch root's job, asking its home, where it runs or a third
        // node: the node the user asks checks before it forwards.
        let sleeper = try cluster.run(["/bin/sleep", "30"], options: ["--node", "2"])
        for (node, command) in [(1, ["kill", sleeper]), (2, ["kill", sleeper]), (3, ["kill", sleeper]), (3, ["logs", sleeper]), (1, ["migrate", sleeper, "3"]), (3, ["lock", sleeper])] {
            let denied = LocalCluster.runAbsolute("/usr/bin/setpriv", [
                "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/env", "OMX_RUN_DIR=\(cluster.runDir(node))",
                siblingExecutable("omx")] + command)
            XCTAssertNotEqual(denied.status, 0, "\(command) asked of node \(node)")
            XCTAssertTrue(denied.stderr.contains("belongs to uid 0, not to uid 65534"), "\(command) asked of node \(node): \(denied.stderr)")
        }
        XCTAssertEqual(cluster.job(sleeper)?["state"] as? String, "running")
        let migrated = cluster.omx(["migrate", sleeper, "9"])
        XCTAssertTrue(migrated.stderr.contains("node 9 is not in the map"), migrated.stderr)
        await cluster.down()
    }
}
