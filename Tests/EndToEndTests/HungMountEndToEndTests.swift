import Foundation
import Logging
import Shared
import XCTest

/// A gateway whose export holds a file system that hangs (here a real FUSE mount whose process
/// is stopped, as an NFS server that went away would be): the calls reaching it wait, at most
/// half the gateway's I/O threads hold them, and everything else is served meanwhile; the
/// gateway still stops on SIGTERM.
final class HungMountEndToEndTests: XCTestCase {
    private let subnet = 90

    func testAHungMountInTheExportStopsOnlyTheCallsThatReachIt() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try LocalCluster(subnet: subnet, nodes: 1)
        defer { cluster.stop() }
        let export = "\(cluster.dir)/export"
        let hung = "\(export)/hung"
        let healthy = "\(export)/healthy"
        let local = "\(export)/local"
        for directory in [hung, healthy, local, "\(export)/sub"] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try Data("fine".utf8).write(to: URL(fileURLWithPath: "\(export)/ok.txt"))
        // Another local file system in the export (as /home or /data often are), and a symlink
        // that leads into the mount that will hang (resolved beneath the export root).
        let mounted = LocalCluster.runAbsolute("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "omx-test", local])
        XCTAssertEqual(mounted.status, 0, "mount tmpfs: \(mounted.stderr)")
        defer { _ = LocalCluster.runAbsolute("/bin/umount", ["-l", local]) }
        try Data("on tmpfs".utf8).write(to: URL(fileURLWithPath: "\(local)/file"))
        XCTAssertEqual(symlink("/hung", "\(export)/via-link"), 0)
        try cluster.start(.discovery, node: 1)
        // Eight I/O threads: at most four for calls that may hang, two for those of one mount.
        let gateway = try cluster.start(.fsgateway, node: 1, extra: ["--export", export, "--io-threads", "8"])

        // Two FUSE mounts inside the export (/mfs mounts, as any FUSE or NFS mount could be): one
        // will hang, the other not.
        let fuse = try await startMount(at: hung, cluster, log: "hung-mount")
        defer { stopMount(fuse, at: hung) }
        let other = try await startMount(at: healthy, cluster, log: "healthy-mount")
        defer { stopMount(other, at: healthy) }
        fuse.send(SIGSTOP)

        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(1))/fsgateway-0.sock"), logger: Logger(label: "test"))
        func call(_ method: String, _ request: FsRequest, timeout: Duration = .seconds(5)) async throws -> FsResponse {
            try await client.call("FSGateway.\(method)", request, returning: FsResponse.self, timeout: timeout)
        }
        func gauge(_ name: String, lane: String? = nil) async throws -> Double {
            let stats = try await client.call("Stats", StatsRequest(), returning: StatsResponse.self)
            for metric in stats.metrics where metric.name == name {
                if lane == nil || metric.labels.contains(where: { $0.0 == "lane" && $0.1 == lane }) { return metric.value }
            }
            return 0
        }
        func waitForGauges(running: Double, waiting: Double) async throws -> (Double, Double) {
            var seen = (-1.0, -1.0)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                seen = (try await gauge("omx_fs_may_hang_calls"), try await gauge("omx_fs_may_hang_calls_waiting"))
                if seen == (running, waiting) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            return seen
        }

        // Three calls into the hung mount: two hold the threads they may, the third waits.
        let stuck = (1...3).map { index in
            Task { try await call("Getattr", FsRequest(path: "hung/nothing-\(index)"), timeout: .seconds(120)) }
        }
        let (running, waiting) = try await waitForGauges(running: 2, waiting: 1)
        XCTAssertEqual(running, 2, "two calls hang in the mount")
        XCTAssertEqual(waiting, 1, "the third waits: a mount may hold half the lane")

        // A path through a symlink into the hung mount: where it leads is not known before the
        // walk, so it takes a share of the lane of its own (and hangs there).
        let throughLink = Task { try await call("Getattr", FsRequest(path: "via-link/nothing"), timeout: .seconds(120)) }
        let (stillRunning, stillWaiting) = try await waitForGauges(running: 3, waiting: 1)
        XCTAssertEqual(stillRunning, 3, "the call through the symlink runs in the lane, and hangs")
        XCTAssertEqual(stillWaiting, 1)
        // The other FUSE mount is served meanwhile, in a share of the lane of its own.
        let onHealthy = try await call("Getattr", FsRequest(path: "healthy/nothing"), timeout: .seconds(5))
        XCTAssertEqual(onHealthy.errorNumber, ENOENT, "answered by the mount that does not hang: \(onHealthy.error)")
        // A path that passes through the hung mount and out again ("..") is one of its calls; a
        // Statfs follows a symlink at the end of its path, and is one of the symlinks' calls.
        let inAndOut = Task { try await call("Getattr", FsRequest(path: "hung/../ok.txt"), timeout: .seconds(120)) }
        let statfsThroughLink = Task { try await call("Statfs", FsRequest(path: "via-link"), timeout: .seconds(120)) }
        let (lastRunning, lastWaiting) = try await waitForGauges(running: 4, waiting: 2)
        XCTAssertEqual(lastRunning, 4, "the Statfs through the symlink hangs in the lane")
        XCTAssertEqual(lastWaiting, 2, "the call through the hung mount and out waits for its share")

        // Meanwhile the gateway serves everything else: on the loop thread and on the pool,
        // another local file system on the loop thread as the root's own.
        let onLoop = try await gauge("omx_fs_calls_total", lane: "loop")
        let onTmpfs = try await call("Getattr", FsRequest(path: "local/file"), timeout: .seconds(2))
        XCTAssertEqual(onTmpfs.attr?.size, 8, onTmpfs.error)
        let onLoopAfter = try await gauge("omx_fs_calls_total", lane: "loop")
        XCTAssertEqual(onLoopAfter, onLoop + 1, "a local file system's metadata is answered on the loop thread")
        let ping = try await client.call("Ping", PingRequest(payload: Array("still here".utf8)), returning: PingResponse.self, timeout: .seconds(2))
        XCTAssertEqual(ping.payload, Array("still here".utf8))
        let attr = try await call("Getattr", FsRequest(path: "ok.txt"), timeout: .seconds(2))
        XCTAssertEqual(attr.errorNumber, 0, attr.error)
        XCTAssertEqual(attr.attr?.size, 4)
        var create = FsRequest(path: "sub/new.txt")
        create.flags = O_CREAT | O_RDWR
        create.mode = 0o644
        let opened = try await call("Open", create, timeout: .seconds(2))
        XCTAssertEqual(opened.errorNumber, 0, opened.error)
        var write = FsRequest()
        write.handle = opened.handle
        write.data = Array("written while a mount hangs".utf8)
        let written = try await call("Write", write, timeout: .seconds(2))
        XCTAssertEqual(written.errorNumber, 0, written.error)
        var fsync = FsRequest()
        fsync.handle = opened.handle
        let synced = try await call("Fsync", fsync, timeout: .seconds(2))
        XCTAssertEqual(synced.errorNumber, 0, synced.error)
        let listing = try await call("Readdir", FsRequest(path: "sub"), timeout: .seconds(2))
        XCTAssertEqual(listing.entries.map(\.name), ["new.txt"])
        var release = FsRequest()
        release.handle = opened.handle
        let released = try await call("Release", release, timeout: .seconds(2))
        XCTAssertEqual(released.errorNumber, 0, released.error)
        XCTAssertEqual(try String(contentsOfFile: "\(export)/sub/new.txt", encoding: .utf8), "written while a mount hangs")

        // The mount comes back: the calls waiting on it are answered, the lane empties.
        fuse.send(SIGCONT)
        for task in stuck + [throughLink] {
            let answer = try await task.value
            XCTAssertEqual(answer.errorNumber, ENOENT, "answered once the mount answers: \(answer.error)")
        }
        let outAgain = try await inAndOut.value
        XCTAssertEqual(outAgain.attr?.size, 4, outAgain.error)
        _ = try await statfsThroughLink.value
        let (after, queued) = try await waitForGauges(running: 0, waiting: 0)
        XCTAssertEqual(after, 0)
        XCTAssertEqual(queued, 0)

        // A gateway with a call hung in a mount still stops on SIGTERM: it leaves the call to
        // the kernel (a thread waiting on a FUSE server that read the request cannot be killed
        // until the server answers or goes; on NFS it can) and ends once the mount is back.
        fuse.send(SIGSTOP)
        let hanging = Task { try? await call("Getattr", FsRequest(path: "hung/still-nothing"), timeout: .seconds(120)) }
        let (hangingNow, _) = try await waitForGauges(running: 1, waiting: 0)
        XCTAssertEqual(hangingNow, 1)
        gateway.send(SIGTERM)
        let stoppedBy = Date().addingTimeInterval(30)
        while !cluster.log("fsgateway-0-node1").contains("] stopped") && Date() < stoppedBy { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertTrue(cluster.log("fsgateway-0-node1").contains("] stopped"), "the gateway stopped although a call hung: \(cluster.log("fsgateway-0-node1"))")
        fuse.send(SIGCONT)
        let status = await gateway.wait(milliseconds: 30_000)
        XCTAssertEqual(status, 0, "the gateway's process ended once the mount answered")
        hanging.cancel()
        await client.close()
        await loop.shutdown()

        // The mount itself stops on SIGTERM, whichever of its threads the kernel hands the signal:
        // here its event loop's thread, not the one that runs FUSE's loop.
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(fuse.pid)/task")) ?? []
        let loopThread = threads.first { (try? readTextFile("/proc/\(fuse.pid)/task/\($0)/comm"))?.hasPrefix("omx-loop") == true }
        XCTAssertNotNil(loopThread, "the mount's event loop thread among \(threads)")
        let signalled = LocalCluster.runAbsolute(
            PythonClient.python, ["-c", "import ctypes, sys; sys.exit(ctypes.CDLL('libc.so.6', use_errno=True).tgkill(int(sys.argv[1]), int(sys.argv[2]), 15))", "\(fuse.pid)", loopThread ?? "0"])
        XCTAssertEqual(signalled.status, 0, "tgkill: \(signalled.stderr)")
        let mountStatus = await fuse.wait(milliseconds: 15_000)
        XCTAssertEqual(mountStatus, 0, "the mount stopped on SIGTERM: \(cluster.log("hung-mount"))")
        XCTAssertFalse(isMountPoint(hung), "and unmounted")
    }

    /// Starts an /mfs mount process at `path` for node 1 of `cluster` and waits until it is up.
    private func startMount(at path: String, _ cluster: LocalCluster, log: String) async throws -> ChildProcess {
        let process = try ChildProcess.spawn(
            siblingExecutable("omx-fsgateway"),
            ["mount", path, "--map", cluster.mapPath, "--key", cluster.keyPath, "--node-id", "1", "--run-dir", cluster.runDir(1)],
            stderrPath: cluster.logPath(log))
        let mountedBy = Date().addingTimeInterval(15)
        while !isMountPoint(path) && Date() < mountedBy { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertTrue(isMountPoint(path), "the FUSE mount at \(path) is up: \(cluster.log(log))")
        return process
    }

    /// Kills a mount process still running and detaches its mount.
    private func stopMount(_ process: ChildProcess, at path: String) {
        if process.poll() == nil {
            process.send(SIGCONT)
            process.send(SIGKILL)
            _ = process.wait()
        }
        _ = LocalCluster.runAbsolute("/bin/umount", ["-l", path])
    }

    /// Whether `path` is a mount point in this process's mount table.
    private func isMountPoint(_ path: String) -> Bool {
        let table = (try? readTextFile("/proc/self/mountinfo")) ?? ""
        return table.split(separator: "\n").contains { $0.split(separator: " ").count > 4 && $0.split(separator: " ")[4] == path }
    }
}
