import Foundation
import Shared
import XCTest

/// File locks through /mfs on real 2-node clusters: fcntl and flock locks taken through one
/// node's mount hold against every other mount and against the file's node's own processes,
/// a database several nodes write at once through their mounts loses no transaction, and a
/// job holding such a lock does not move.
final class MfsLocksEndToEndTests: XCTestCase {
    /// A file on node 1's disk, as its path there and through each node's mount.
    private func sharedFile(_ cluster: DiscoveryCluster, _ name: String) throws -> (disk: String, node1: String, node2: String) {
        let disk = "\(cluster.dir)/locked"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: "\(disk)/\(name)", contents: Data("0123456789abcdefghij".utf8))
        return ("\(disk)/\(name)", "\(cluster.dir)/node-1/mfs/1\(disk)/\(name)", "\(cluster.dir)/node-2/mfs/1\(disk)/\(name)")
    }

    /// Node `node`'s lock markers: of each process that took a lock, and of each file locked.
    private func markers(_ cluster: DiscoveryCluster, _ node: Int) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: MfsLockMarkers.directory(runDir: cluster.runDir(node)))) ?? []).sorted()
    }

    /// A 2-node cluster whose mounts list both nodes, and the lock-taking program in its directory.
    private func mountedCluster(subnet: Int) async throws -> (DiscoveryCluster, Locker) {
        try DiscoveryCluster.requireFUSE()
        try PythonClient.requireAndGenerate()
        let cluster = try DiscoveryCluster(subnet: subnet, nodes: 2)
        for node in 1...2 {
            let mounted = await cluster.waitForMount(at: "\(cluster.dir)/node-\(node)/mfs", nodes: 2)
            XCTAssertTrue(mounted, "node \(node)'s /mfs lists both nodes")
        }
        return (cluster, try Locker(in: cluster.dir))
    }

    /// Has job `job` on node 1 let go of its lock (`flag` appears), waits until node 1's markers
    /// are gone, moves the job to node 2, and kills it.
    private func letGoAndMove(_ cluster: DiscoveryCluster, _ job: String, flag: String) async {
        _ = FileManager.default.createFile(atPath: flag, contents: nil)
        let unmarked = await cluster.waitFor(seconds: 10) { self.markers(cluster, 1).isEmpty }
        XCTAssertNotNil(unmarked, "the markers go once the job let go: \(markers(cluster, 1))")
        let moved = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(moved.status, 0, moved.stderr)
        _ = cluster.omx(["kill", "-KILL", job])
    }

    func testLocksHoldAcrossNodesAndAgainstTheNodesOwnProcesses() async throws {
        let (cluster, locker) = try await mountedCluster(subnet: 100)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let file = try sharedFile(cluster, "ranges")

        // A process on node 2 write-locks bytes 0-9 through its mount.
        let holder = try locker.start(["hold", "fcntl", file.node2, "write", "0", "10"])
        XCTAssertEqual(holder.line(), "held")
        XCTAssertEqual(markers(cluster, 2).count, 2, "node 2's mount marks the process that holds a lock, and the file")
        XCTAssertEqual(markers(cluster, 1), [])

        XCTAssertEqual(locker.run(["try", "fcntl", file.node1, "write", "0", "10"]), "busy", "through another node's mount")
        XCTAssertEqual(locker.run(["try", "fcntl", file.node1, "read", "5", "1"]), "busy", "a read lock inside the range")
        XCTAssertEqual(locker.run(["try", "fcntl", file.node1, "write", "10", "10"]), "got", "the bytes after the range are free")
        XCTAssertEqual(locker.run(["try", "fcntl", file.disk, "write", "9", "1"]), "busy", "a process of the file's own node")
        XCTAssertEqual(locker.run(["try", "flock", file.node1, "write", "0", "0"]), "got", "flock and fcntl locks never meet, as on Linux")
        XCTAssertEqual(locker.run(["test", file.node1, "0", "100"]), "write 0 10 pid 0", "F_GETLK through a mount")
        XCTAssertEqual(locker.run(["test", file.disk, "0", "100"]), "write 0 10 pid -1", "F_GETLK on the node: the gateway's lock")
        XCTAssertEqual(locker.run(["test", file.node1, "10", "100"]), "unlocked")
        XCTAssertEqual(locker.run(["try", "fcntl", file.node1, "read", "0", "1", "write-only"]), "errno 9", "a read lock needs a file open for reading")
        XCTAssertEqual(locker.run(["wait", "fcntl", file.node1, "0", "10", "1"]), "waiting\ninterrupted", "a signal interrupts F_SETLKW")

        // A waiter gets the lock once the holder lets go (its process ends); more waiters
        // than libfuse's default 10 threads do not keep the holder's close from the mount.
        let waiter = try locker.start(["hold", "fcntl", file.node1, "write", "0", "10", "wait"])
        let crowd = try (0..<12).map { _ in try locker.start(["wait", "fcntl", file.node2, "0", "10", "60"]) }
        for other in [waiter] + crowd { XCTAssertEqual(other.line(), "waiting") }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertTrue(waiter.process.isRunning, "the waiter waits while the lock is held")
        holder.finish()
        XCTAssertEqual(waiter.line(), "held")
        let holderUnmarked = await cluster.waitFor(seconds: 5) { self.markers(cluster, 2).isEmpty }
        XCTAssertNotNil(holderUnmarked, "the holder's marker goes with its locks")
        XCTAssertEqual(markers(cluster, 1).count, 2)
        waiter.finish()
        let waiterUnmarked = await cluster.waitFor(seconds: 5) { self.markers(cluster, 1).isEmpty }
        XCTAssertNotNil(waiterUnmarked)
        for other in crowd {
            XCTAssertEqual(other.line(), "got", "each of the crowd in turn")
            other.finish()
        }
        XCTAssertEqual(locker.run(["try", "fcntl", file.disk, "write", "0", "20"]), "got", "every lock went with its process")

        // A caller waiting for a lock holds up no removal of the file meanwhile.
        let doomed = try sharedFile(cluster, "doomed")
        let keeper = try locker.start(["hold", "flock", doomed.node2, "write", "0", "0"])
        XCTAssertEqual(keeper.line(), "held")
        let hopeful = try locker.start(["wait", "flock", doomed.node1, "0", "0", "30"])
        XCTAssertEqual(hopeful.line(), "waiting")
        try await Task.sleep(for: .milliseconds(200))
        let removed = LocalCluster.runAbsolute("/usr/bin/timeout", ["10", "/bin/rm", doomed.node1])
        XCTAssertEqual(removed.status, 0, "rm through the waiter's mount: \(removed.stderr)")
        keeper.finish()
        XCTAssertEqual(hopeful.line(), "got", "the lock of the removed file passes on")
        hopeful.finish()

        // flock: exclusive against every other holder, shared with shared.
        let flocker = try locker.start(["hold", "flock", file.node2, "write", "0", "0"])
        XCTAssertEqual(flocker.line(), "held")
        XCTAssertEqual(locker.run(["try", "flock", file.node1, "read", "0", "0"]), "busy")
        XCTAssertEqual(locker.run(["try", "flock", file.disk, "write", "0", "0"]), "busy", "a process of the file's own node")
        flocker.finish()
        let sharer = try locker.start(["hold", "flock", file.node2, "read", "0", "0"])
        XCTAssertEqual(sharer.line(), "held")
        XCTAssertEqual(locker.run(["try", "flock", file.node1, "read", "0", "0"]), "got", "shared locks share")
        XCTAssertEqual(locker.run(["try", "flock", file.node1, "write", "0", "0"]), "busy")
        sharer.finish()
        XCTAssertEqual(locker.run(["try", "flock", file.node1, "write", "0", "0"]), "got")
        // Locks held through a gateway instance that stops go with it: the file they were held
        // through answers ESTALE from then on, rather than go on as if they were held.
        let fragile = try sharedFile(cluster, "fragile")
        let fd = open(fragile.node2, O_RDWR)
        let other = open(fragile.node2, O_RDONLY)  // the same process's, no lock taken through it
        var range = flock()
        range.l_type = Int16(F_WRLCK)
        range.l_len = 1
        XCTAssertEqual(fcntl(fd, F_SETLK, &range), 0)
        XCTAssertEqual(markers(cluster, 2).count, 2)
        cluster.kill9(1, "fsgateway-0")
        let restarted = cluster.omx(["cluster", "up", "--nodes", "2", "--dir", cluster.dir, "--first-address", "127.0.100.1", "--timeout", "5"])
        XCTAssertEqual(restarted.status, 0, restarted.stderr)
        let answering = await cluster.waitFor(seconds: 10) { cluster.omx(["ping", "fsgateway"], runDir: 1).status == 0 }
        XCTAssertNotNil(answering, "node 1's gateway answers again")
        var byte: UInt8 = 0
        XCTAssertEqual(pread(other, &byte, 1, 0), -1, "another descriptor of the locked file")
        XCTAssertEqual(errno, ESTALE, String(cString: strerror(errno)))
        XCTAssertEqual(pread(fd, &byte, 1, 0), -1)
        XCTAssertEqual(errno, ESTALE, String(cString: strerror(errno)))
        close(other)
        close(fd)
        XCTAssertEqual(locker.run(["try", "fcntl", fragile.node1, "write", "0", "1"]), "got", "the lock went with the instance")

        // A flock lock goes at the release of its file, which the kernel sends after the close.
        let unmarked = await cluster.waitFor(seconds: 5) { (self.markers(cluster, 1) + self.markers(cluster, 2)).isEmpty }
        XCTAssertNotNil(unmarked, "no marker is left: \(markers(cluster, 1) + markers(cluster, 2))")
        await cluster.down()
    }

    func testCallersBeyondTheMountsWaiterLimitAreRefusedWithENOLCKAndTheOthersGetTheLock() async throws {
        // MfsOperations.maxLockWaiters: each waiter keeps one of the mount's threads.
        let limit = 128
        let (cluster, locker) = try await mountedCluster(subnet: 110)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let file = try sharedFile(cluster, "crowded")

        // A process of node 1 holds the whole file; 130 threads of a process on node 2 wait for it.
        let holder = try locker.start(["hold", "fcntl", file.disk, "write", "0", "0"])
        XCTAssertEqual(holder.line(), "held")
        let crowd = try locker.start(["crowd", file.node2, "\(limit + 2)", "2"])
        XCTAssertEqual(crowd.line(), "refused ['errno \(ENOLCK)', 'errno \(ENOLCK)']", "the two beyond the limit are refused at once, the others wait")
        XCTAssertTrue(
            cluster.log(2, "mfs").contains("\(limit) callers wait for locks already; this one is refused (ENOLCK)"),
            "the mount says why: \(cluster.log(2, "mfs").suffix(2_000))")

        // Once the holder lets go, every waiter gets the lock (one process: they share its locks).
        holder.finish()
        XCTAssertEqual(crowd.line(), "got \(limit)")
        crowd.finish()
        let dropped = await cluster.waitFor(seconds: 10) { locker.run(["test", file.disk, "0", "0"]) == "unlocked" }
        XCTAssertNotNil(dropped, "the process's end dropped its lock")
    }

    func testADatabaseWrittenFromEveryNodeLosesNoTransactionAndALockHolderDoesNotMove() async throws {
        try DiscoveryCluster.requireCRIU()
        let (cluster, locker) = try await mountedCluster(subnet: 101)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }

        // SQLite's rollback journal: each transaction locks the database, reads it, writes the
        // journal beside it and removes it. Through two mounts and on the node itself at once.
        let database = try sharedFile(cluster, "counter.db")
        try FileManager.default.removeItem(atPath: database.disk)
        let created = LocalCluster.runAbsolute("/usr/bin/python3", ["-c", "import sqlite3; d = sqlite3.connect('\(database.disk)'); d.execute('CREATE TABLE counter (n INTEGER)'); d.execute('INSERT INTO counter VALUES (0)'); d.commit()"])
        XCTAssertEqual(created.status, 0, created.stderr)
        let writers = try [database.node1, database.node2, database.disk].map { try locker.start(["count", $0, "40"]) }
        for writer in writers { XCTAssertEqual(writer.line(), "counted") }
        writers.forEach { $0.finish() }
        let total = LocalCluster.runAbsolute("/usr/bin/python3", ["-c", "import sqlite3; print(sqlite3.connect('\(database.disk)').execute('SELECT n FROM counter').fetchone()[0])"])
        XCTAssertEqual(total.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "120", "every transaction of every node counted once: \(total.stderr)")

        // A job holding a lock through /mfs cannot move; once it lets go, it can.
        let guarded = try sharedFile(cluster, "guarded")
        let flag = "\(cluster.dir)/let-go"
        let job = try cluster.run([PythonClient.python, locker.script, "guard", guarded.node1, flag], options: ["--node", "1"])
        let marked = await cluster.waitFor(seconds: 10) { !self.markers(cluster, 1).isEmpty }
        XCTAssertNotNil(marked, "the job's lock is marked")
        let refused = cluster.omx(["migrate", job, "2"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("holds a file lock through /mfs (node 1: "), refused.stderr)
        let shown = await cluster.waitFor(seconds: 5) {
            cluster.jobs().first { $0["job"] as? String == job }.map { ($0["cantmove"] as? String ?? "").contains("file lock through /mfs") } ?? false
        }
        XCTAssertNotNil(shown, "omx mps shows why: \(cluster.jobs())")
        await letGoAndMove(cluster, job, flag: flag)

        // A flock lock is its open file's: a process that inherited the file holds it after the
        // process that took it is gone, and keeps the job where it is until it lets go.
        let handed = try sharedFile(cluster, "handed")
        let handFlag = "\(cluster.dir)/hand-back"
        let heir = try cluster.run([PythonClient.python, locker.script, "handdown", handed.node1, handFlag], options: ["--node", "1"])
        let inherited = await cluster.waitFor(seconds: 10) { FileManager.default.fileExists(atPath: handFlag + ".ready") }
        XCTAssertNotNil(inherited, "the grandchild holds the lock, the child that took it is gone")
        XCTAssertEqual(locker.run(["try", "flock", handed.node2, "write", "0", "0"]), "busy", "the inherited lock holds")
        let kept = cluster.omx(["migrate", heir, "2"])
        XCTAssertNotEqual(kept.status, 0, "a job with a process holding an inherited flock does not move")
        XCTAssertTrue(kept.stderr.contains("is a file locked through /mfs (node 1: "), kept.stderr)
        await letGoAndMove(cluster, heir, flag: handFlag)
        await cluster.down()
    }
}
