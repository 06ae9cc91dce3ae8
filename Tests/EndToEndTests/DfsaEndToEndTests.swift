import Foundation
import Logging
import Shared
import XCTest

/// DFSA on and off on a real 3-node local cluster, and the mount(8) helper `mount.mfs` that
/// makes the HOWTO's fstab line `mfs_mnt /mfs mfs dfsa=1 0 0` work.
final class DfsaEndToEndTests: XCTestCase {
    /// The value of the series of `metric` whose labels contain every one of `labels` (summed).
    func testWithDFSAOffAGuestJobsFileCallsGoThroughItsHome() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 59, nodes: 3, configText: "[mfs]\ndfsa = no\n")
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let listed = await cluster.waitForMount(at: "\(cluster.dir)/node-2/mfs", nodes: 3)
        XCTAssertTrue(listed, "node 2's /mfs lists nodes 1, 2 and 3")
        let shared = "\(cluster.dir)/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        let onNode3 = "\(cluster.dir)/node-2/mfs/3\(shared)"

        // A job of node 1 running on node 2 (a guest there) writes and reads node 3's files
        // through node 2's mount: every call goes to node 1's gateway, which relays it to node 3.
        let job = try cluster.run(["/bin/sh", "-c", "echo through home > \(onNode3)/out && cat \(onNode3)/out > \(onNode3)/copy"], options: ["--node", "2", "--wait"])
        XCTAssertFalse(job.isEmpty)
        XCTAssertEqual(try String(contentsOfFile: "\(shared)/out", encoding: .utf8), "through home\n")
        XCTAssertEqual(try String(contentsOfFile: "\(shared)/copy", encoding: .utf8), "through home\n")
        let relayed = cluster.metric("omx_fs_relayed_total", [#"node="1""#, #"to="3""#])
        XCTAssertGreaterThan(relayed, 0, "node 1's gateway relayed the guest's calls to node 3")
        XCTAssertEqual(cluster.metric("omx_fs_written_bytes_total", [#"node="3""#]), 26, "node 3's gateway wrote out and copy")
        XCTAssertEqual(cluster.metric("omx_rpc_calls_total", [#"node="2""#, "FSGateway.Open"]), 0, "nothing went to node 2's own gateway")

        // A process that is no job uses node 3's gateway directly, DFSA or not.
        try "direct\n".write(toFile: "\(onNode3)/direct", atomically: false, encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: "\(shared)/direct", encoding: .utf8), "direct\n")
        XCTAssertEqual(cluster.metric("omx_fs_relayed_total", [#"node="1""#, #"to="3""#]), relayed, "no relay for a process that is no job")

        // Nobody but another node's mount may ask a gateway to relay: a tool holding the key is refused.
        let loop = try EventLoop()
        let tool = RPCClient(
            loop: loop, endpoint: .tcp(host: "127.0.59.1", port: ServiceKind.fsgateway.port()),
            configuration: .init(authenticator: Authenticator(key: try ClusterKey.load(from: cluster.keyPath), nodeID: 0), bindAddress: "127.0.59.1"),
            logger: Logger(label: "test"))
        var request = FsRequest(path: String(shared.dropFirst()))
        request.relayTo = 3
        let refused = try await tool.call("FSGateway.Getattr", request, returning: FsResponse.self, timeout: .seconds(5))
        XCTAssertEqual(refused.errorNumber, EPERM)
        XCTAssertTrue(refused.error.contains("only other nodes' /mfs mounts may ask for a relay"), refused.error)
        await tool.close()
        await loop.shutdown()
    }

    func testWithDFSAOffAGuestJobsLockIsTakenAtTheFilesNodeThroughItsHome() async throws {
        try DiscoveryCluster.requireFUSE()
        try PythonClient.requireAndGenerate()
        let cluster = try DiscoveryCluster(subnet: 111, nodes: 3, configText: "[mfs]\ndfsa = no\n")
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        for node in 1...2 {
            let listed = await cluster.waitForMount(at: "\(cluster.dir)/node-\(node)/mfs", nodes: 3)
            XCTAssertTrue(listed, "node \(node)'s /mfs lists nodes 1, 2 and 3")
        }
        let locker = try Locker(in: cluster.dir)
        let shared = "\(cluster.dir)/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        let disk = "\(shared)/guarded"
        try "0123456789".write(toFile: disk, atomically: false, encoding: .utf8)
        let flag = "\(cluster.dir)/let-go"

        // A job of node 1 running on node 2 write-locks node 3's file through node 2's mount:
        // the lock call goes to node 1's gateway, which takes the lock at node 3's.
        let job = try cluster.run([PythonClient.python, locker.script, "guard", "\(cluster.dir)/node-2/mfs/3\(disk)", flag], options: ["--node", "2"])
        // Asked with F_GETLK, which takes no lock: a probe that took one could make the job's
        // own (non-waiting) attempt fail.
        let held = await cluster.waitFor(seconds: 10) { locker.run(["test", disk, "0", "0"]).hasPrefix("write 0 0 pid ") }
        XCTAssertNotNil(held, "a process of the file's node finds it locked; the job: \(cluster.omx(["logs", job]).stdout) \(cluster.omx(["logs", job, "--stderr"]).stdout) \(cluster.omx(["mps"]).stdout)")
        XCTAssertEqual(locker.run(["try", "fcntl", "\(cluster.dir)/node-1/mfs/3\(disk)", "write", "5", "1"]), "busy", "so does one through another node's mount")
        XCTAssertGreaterThan(cluster.metric("omx_rpc_calls_total", [#"node="1""#, "FSGateway.Lock"]), 0, "the job's home relayed the lock")
        XCTAssertGreaterThan(cluster.metric("omx_rpc_calls_total", [#"node="3""#, "FSGateway.Lock"]), 0, "the file's node took it")
        XCTAssertEqual(cluster.metric("omx_rpc_calls_total", [#"node="2""#, "FSGateway.Lock"]), 0, "the node the job runs on had no part")

        // The job lets go: the lock is gone at the file's node too.
        _ = FileManager.default.createFile(atPath: flag, contents: nil)
        let released = await cluster.waitFor(seconds: 10) { locker.run(["test", disk, "0", "0"]) == "unlocked" }
        XCTAssertNotNil(released, "the unlock went the same way")
        _ = cluster.omx(["kill", "-KILL", job])
    }

    func testMountMfsIsTheHelperOfTheHowtosFstabLine() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 61, nodes: 2, gateways: 1)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let helper = "\(cluster.dir)/mount.mfs"
        try FileManager.default.createSymbolicLink(atPath: helper, withDestinationPath: siblingExecutable("omx-fsgateway"))
        let target = "\(cluster.dir)/extra"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let own = "node=1,map=\(cluster.mapPath),key=\(cluster.keyPath),run_dir=\(cluster.runDir(1))"

        // As mount(8) calls it: it returns once mounted, the file system serving in the background.
        let mounted = LocalCluster.runAbsolute(helper, ["mfs_mnt", target, "-o", "rw,dfsa=1,\(own)"])
        XCTAssertEqual(mounted.status, 0, mounted.stderr)
        defer { _ = LocalCluster.runAbsolute("/bin/fusermount3", ["-u", "-z", target]) }
        let mountinfo = try readTextFile("/proc/self/mountinfo")
        XCTAssertTrue(mountinfo.contains(" \(target) ") && mountinfo.contains("fuse.mfs mfs_mnt"), "mounted as type mfs from mfs_mnt")
        let listed = await cluster.waitForMount(at: target, nodes: 2)
        XCTAssertTrue(listed, "the helper's mount lists both nodes")
        XCTAssertEqual(LocalCluster.runAbsolute("/bin/fusermount3", ["-u", target]).status, 0)

        // mount(8) with the HOWTO's fstab line, through -T FILE and a mount.mfs on its path.
        let sbinHelper = "/usr/sbin/mount.mfs"
        let ours = (try? FileManager.default.destinationOfSymbolicLink(atPath: sbinHelper)).map { $0.hasSuffix("omx-fsgateway") } ?? false
        if FileManager.default.fileExists(atPath: sbinHelper) && !ours {
            XCTFail("\(sbinHelper) exists and is not OMX's: mount(8) with the fstab line was NOT tested")
        } else {
            try? FileManager.default.removeItem(atPath: sbinHelper)
            try FileManager.default.createSymbolicLink(atPath: sbinHelper, withDestinationPath: siblingExecutable("omx-fsgateway"))
            defer { try? FileManager.default.removeItem(atPath: sbinHelper) }
            let fstab = "\(cluster.dir)/fstab"
            try "mfs_mnt \(target) mfs dfsa=1,\(own) 0 0\n".write(toFile: fstab, atomically: true, encoding: .utf8)
            let viaMount = LocalCluster.runAbsolute("/bin/mount", ["-T", fstab, target])
            XCTAssertEqual(viaMount.status, 0, viaMount.stderr)
            let again = await cluster.waitForMount(at: target, nodes: 2)
            XCTAssertTrue(again, "mount(8) mounted the fstab line")
            XCTAssertEqual(LocalCluster.runAbsolute("/bin/umount", [target]).status, 0)
        }

        // Bad options are refused, naming the option; nothing is mounted.
        let bad = LocalCluster.runAbsolute(helper, ["mfs_mnt", target, "-o", "dfsa=1,colour=blue"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("mount.mfs: unknown option \"colour=blue\""), bad.stderr)
        let missing = LocalCluster.runAbsolute(helper, ["mfs_mnt"])
        XCTAssertTrue(missing.stderr.contains("usage: mount.mfs mfs_mnt MOUNTPOINT"), missing.stderr)
        // A mount that fails (no such map) makes the helper fail with the reason, not hang.
        let broken = LocalCluster.runAbsolute(helper, ["mfs_mnt", target, "-o", "map=\(cluster.dir)/absent.map"])
        XCTAssertEqual(broken.status, 1)
        XCTAssertTrue(broken.stderr.contains("absent.map"), broken.stderr)
    }
}
