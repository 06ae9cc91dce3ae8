import Foundation
import Shared
import XCTest

/// The HOWTO's per-process entries of /mfs (here, home, magic, lastexec, selected), each
/// resolved for the process that reads it, through real mounts of a local cluster.
final class MagicEntriesEndToEndTests: XCTestCase {
    func testTheMagicEntriesAnswerForTheCallingProcess() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 54, nodes: 2)
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-2/mfs", nodes: 2)
        XCTAssertTrue(isMounted)
        let mfs = "\(cluster.dir)/node-2/mfs"
        let disk = "\(cluster.dir)/magic"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        // A job whose home is node 1 running on node 2: here is 2, home is 1.
        let job = cluster.omx(["run", "--node", "2", "--wait", "--", "/bin/sh", "-c", "readlink \(mfs)/here; readlink \(mfs)/home"])
        XCTAssertEqual(job.status, 0, job.stderr)
        XCTAssertEqual(cluster.output(of: job.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "2\n1\n")
        // magic: the node of the caller's last successful create.
        let created = LocalCluster.runAbsolute("/usr/bin/python3", ["-c", """
            import os
            print(os.readlink("\(mfs)/magic"))
            open("\(mfs)/1\(disk)/made", "w").close()
            print(os.readlink("\(mfs)/magic"))
            """])
        XCTAssertEqual(created.stdout, "2\n1\n", created.stderr)
        // selected: what the calling shell chose with omx select, for it and its children.
        let env = "OMX_RUN_DIR=\(cluster.runDir(2)) OMX_MAP=\(cluster.mapPath) OMX_KEY=\(cluster.keyPath)"
        let omx = siblingExecutable("omx")
        let selected = LocalCluster.runAbsolute("/bin/sh", ["-c", "readlink \(mfs)/selected; \(env) \(omx) select 1 && readlink \(mfs)/selected && sh -c 'readlink \(mfs)/selected'"])
        XCTAssertEqual(selected.stdout, "2\n1\n1\n", selected.stderr)
        XCTAssertEqual(LocalCluster.runAbsolute("/bin/sh", ["-c", "readlink \(mfs)/selected"]).stdout, "2\n", "another shell has its own")
        await cluster.down()
    }

    func testLastexecIsWhereTheCallerLastExecdWhereverItRunsNow() async throws {
        try DiscoveryCluster.requireFUSE()
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 65, nodes: 3)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let mfs = "\(cluster.dir)/node-1/mfs"
        let trigger = "\(cluster.dir)/exec-now"
        let script = "\(cluster.dir)/lastexec.py"
        // Prints its stage and lastexec, read by the process itself (no readlink child, which
        // would have exec'd where it runs); in stage one, execs itself once the trigger exists.
        try """
            import os, sys, time
            mfs, trigger, stage = sys.argv[1], sys.argv[2], sys.argv[3]
            while True:
                print(stage, os.readlink(mfs + "/lastexec"), flush=True)
                if stage == "one" and os.path.exists(trigger):
                    os.execv(sys.executable, [sys.executable, sys.argv[0], mfs, trigger, "two"])
                time.sleep(0.05)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let job = try cluster.run(["/usr/bin/python3", script, mfs, trigger, "one"], options: ["--node", "1", "--stay"])
        func lines() -> [String] { cluster.output(of: job).split(separator: "\n").map(String.init) }
        func linesAfter(_ count: Int) async -> [String]? {
            await cluster.waitFor(seconds: 10) { lines().count > count + 3 } != nil ? Array(lines().dropFirst(count + 1)) : nil
        }
        var seen = await linesAfter(0)
        XCTAssertEqual(seen?.last, "one 1", "started on node 1: it exec'd there")

        var result = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(result.status, 0, result.stderr)
        seen = await linesAfter(lines().count)
        XCTAssertEqual(Set(seen ?? []), ["one 1"], "moved to node 2 without an exec: still node 1")

        _ = FileManager.default.createFile(atPath: trigger, contents: nil)
        let execd = await cluster.waitFor(seconds: 10) { lines().last == "two 2" }
        XCTAssertNotNil(execd, "it exec'd on node 2: \(lines().suffix(3))")

        result = cluster.omx(["migrate", job, "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        seen = await linesAfter(lines().count)
        XCTAssertEqual(Set(seen ?? []), ["two 2"], "moved on to node 3: the exec note travelled with it")

        // A process that is no job exec'd on the node whose mount it reads.
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "\(cluster.dir)/node-3/mfs/lastexec"), "3")
        _ = cluster.omx(["kill", "-KILL", job])
    }
}
