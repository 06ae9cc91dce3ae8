import Foundation
import Shared
import XCTest

/// The mounts' cache of attributes and listings, kept true by the gateways' change feeds, on
/// real 2-node clusters: what changed on node 2 — on its disk directly, or through another
/// mount — is seen through node 1's /mfs/2 once the kernel's own one-second cache has passed,
/// and what did not change is answered without a call to the gateway.
final class MfsCacheEndToEndTests: XCTestCase {
    private let files = FileManager.default

    private func size(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    private func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : nil
    }

    private func listing(_ path: String) -> [String] {
        ((try? files.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    private func getattrCalls(_ cluster: DiscoveryCluster) -> Double {
        cluster.metric("omx_rpc_calls_total", ["FSGateway.Getattr"])
    }

    func testChangesMadeOnTheNodeItselfReachAMountThatCachedItsFiles() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 79, nodes: 2)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 2)
        XCTAssertTrue(isMounted)
        let disk = "\(cluster.dir)/coherent"
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"
        try files.createDirectory(atPath: "\(disk)/sub", withIntermediateDirectories: true)
        try Data("one".utf8).write(to: URL(fileURLWithPath: "\(disk)/a"))
        try Data("b".utf8).write(to: URL(fileURLWithPath: "\(disk)/sub/b"))
        try files.createDirectory(atPath: "\(disk)/private", withIntermediateDirectories: true)
        try Data("p".utf8).write(to: URL(fileURLWithPath: "\(disk)/private/p"))
        XCTAssertEqual(chmod("\(disk)/private", 0o700), 0)
        XCTAssertEqual(chmod(cluster.dir, 0o755), 0)
        XCTAssertEqual(chmod(disk, 0o755), 0)
        let following = await cluster.waitFor(seconds: 10) { cluster.metric("omx_rpc_calls_total", ["FSGateway.Changes"]) > 0 }
        XCTAssertNotNil(following, "node 1's mount follows node 2's changes")

        // Node 1's mount learns the files and the listing.
        XCTAssertEqual(size("\(remote)/a"), 3)
        XCTAssertEqual(size("\(remote)/sub/b"), 1)
        XCTAssertEqual(listing(remote), ["a", "private", "sub"])
        XCTAssertNil(size("\(remote)/missing"))

        XCTAssertEqual(size("\(remote)/private/p"), 1, "root looks into a directory only root may search")

        // Unchanged, they are answered from the cache once the kernel's second has passed
        // (twice over: the news of the set-up's own changes may land after the first look).
        try await Task.sleep(for: .milliseconds(1_200))
        _ = (size("\(remote)/a"), size("\(remote)/sub/b"), size("\(remote)/missing"))
        try await Task.sleep(for: .milliseconds(1_200))
        let before = getattrCalls(cluster)
        XCTAssertEqual(size("\(remote)/a"), 3)
        XCTAssertEqual(size("\(remote)/sub/b"), 1)
        XCTAssertEqual(getattrCalls(cluster), before, "nothing changed: no call to the gateway")
        // Another user learns nothing from what root looked up: the gateway decides, as that user.
        let nobody = LocalCluster.runAbsolute("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/stat", "\(remote)/private/p"])
        XCTAssertNotEqual(nobody.status, 0)
        XCTAssertTrue(nobody.stderr.contains("Permission denied"), nobody.stderr)

        // Changed on node 2's disk by a process of its own, not through any mount.
        try Data("three".utf8).write(to: URL(fileURLWithPath: "\(disk)/a"))
        XCTAssertEqual(chmod("\(disk)/a", 0o600), 0)
        try Data("new".utf8).write(to: URL(fileURLWithPath: "\(disk)/missing"))
        try files.removeItem(atPath: "\(disk)/sub/b")
        try files.moveItem(atPath: "\(disk)/sub", toPath: "\(disk)/moved")
        let seen = await cluster.waitFor(seconds: 5) {
            self.size("\(remote)/a") == 5 && self.mode("\(remote)/a") == 0o600 && self.size("\(remote)/missing") == 3
                && self.size("\(remote)/sub") == nil && self.listing("\(remote)/moved") == [] && self.listing(remote) == ["a", "missing", "moved", "private"]
        }
        XCTAssertNotNil(seen, "every change is seen: a \(String(describing: size("\(remote)/a"))), listing \(listing(remote))")
        XCTAssertEqual(try String(contentsOfFile: "\(remote)/a", encoding: .utf8), "three")

        // The same file written again and again with nothing else changing in between (a log
        // appended to now and then): every write is news to the mount, not only the first.
        for round in 1...3 {
            let appender = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(disk)/a"))
            try appender.seekToEnd()
            try appender.write(contentsOf: Data("+".utf8))
            try appender.close()
            let grown = await cluster.waitFor(seconds: 5) { self.size("\(remote)/a") == 5 + round }
            XCTAssertNotNil(grown, "append \(round) is seen: a is \(String(describing: size("\(remote)/a"))) bytes")
        }
    }

    func testChangesThroughAnotherNodesMountReachThisMount() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 80, nodes: 2)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        for node in 1...2 {
            let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-\(node)/mfs", nodes: 2)
            XCTAssertTrue(isMounted)
        }
        let disk = "\(cluster.dir)/shared"
        try files.createDirectory(atPath: "\(disk)/tree/deep", withIntermediateDirectories: true)
        let one = "\(cluster.dir)/node-1/mfs/2\(disk)"
        let two = "\(cluster.dir)/node-2/mfs/2\(disk)"
        let following = await cluster.waitFor(seconds: 10) { cluster.metric("omx_rpc_calls_total", ["FSGateway.Changes"]) >= 2 }
        XCTAssertNotNil(following)

        // Node 1 creates and caches; node 2's mount changes it all.
        XCTAssertTrue(files.createFile(atPath: "\(one)/tree/deep/f", contents: Data("1".utf8)))
        XCTAssertEqual(size("\(one)/tree/deep/f"), 1)
        XCTAssertEqual(listing("\(one)/tree"), ["deep"])
        XCTAssertTrue(files.createFile(atPath: "\(two)/tree/deep/f", contents: Data("22".utf8)))
        XCTAssertTrue(files.createFile(atPath: "\(two)/tree/g", contents: Data()))
        XCTAssertEqual(rename("\(two)/tree", "\(two)/renamed"), 0)
        let seen = await cluster.waitFor(seconds: 5) {
            self.size("\(one)/renamed/deep/f") == 2 && self.size("\(one)/tree/deep/f") == nil && self.listing("\(one)/renamed") == ["deep", "g"]
        }
        XCTAssertNotNil(seen, "node 1 sees node 2's changes: \(listing(one)) \(listing("\(one)/renamed"))")

        // Node 1's own changes need no news: its cache took them as they succeeded.
        XCTAssertEqual(unlink("\(one)/renamed/g"), 0)
        XCTAssertEqual(listing("\(one)/renamed"), ["deep"])
        XCTAssertEqual(mkdir("\(one)/renamed/made", 0o755), 0)
        XCTAssertEqual(listing("\(one)/renamed/made"), [])
        XCTAssertTrue(files.createFile(atPath: "\(one)/renamed/made/x", contents: Data("x".utf8)))
        XCTAssertEqual(listing("\(one)/renamed/made"), ["x"])
        XCTAssertEqual(size("\(two)/renamed/made/x"), 1, "and node 2 sees them too")

        // A file written on one node is there at once on another that listed its directory.
        XCTAssertEqual(listing("\(two)/renamed"), ["deep", "made"])
        XCTAssertTrue(files.createFile(atPath: "\(one)/renamed/fresh", contents: Data("fresh".utf8)))
        XCTAssertEqual(try String(contentsOfFile: "\(two)/renamed/fresh", encoding: .utf8), "fresh")
        // In a directory node 1 made, node 2's files appear once the news arrives.
        XCTAssertTrue(files.createFile(atPath: "\(two)/renamed/made/y", contents: Data("y".utf8)))
        let appeared = await cluster.waitFor(seconds: 5) { self.size("\(one)/renamed/made/y") == 1 }
        XCTAssertNotNil(appeared)

        // logrotate: a log written through node 1's mount is renamed on node 2 while open, and
        // both mounts look at its new name; what is written after is seen there, by both.
        let log = open("\(one)/app.log", O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(log, 0)
        XCTAssertEqual(pwrite(log, "first\n", 6, 0), 6)
        XCTAssertEqual(fsync(log), 0)
        XCTAssertEqual(rename("\(disk)/app.log", "\(disk)/app.log.1"), 0)
        let renamed = await cluster.waitFor(seconds: 5) { self.size("\(one)/app.log.1") == 6 && self.size("\(two)/app.log.1") == 6 }
        XCTAssertNotNil(renamed, "both mounts see the rotated log")
        // Both answer it from their caches now (past the kernel's second, and the news of the
        // rename).
        try await Task.sleep(for: .milliseconds(1_200))
        _ = (size("\(one)/app.log.1"), size("\(two)/app.log.1"))
        try await Task.sleep(for: .milliseconds(1_200))
        let calls = getattrCalls(cluster)
        _ = (size("\(one)/app.log.1"), size("\(two)/app.log.1"))
        XCTAssertEqual(getattrCalls(cluster), calls, "the rotated log is cached by both mounts")
        XCTAssertEqual(pwrite(log, "second\n", 7, 6), 7)
        XCTAssertEqual(fsync(log), 0)
        let grown = await cluster.waitFor(seconds: 5) { self.size("\(one)/app.log.1") == 13 && self.size("\(two)/app.log.1") == 13 }
        XCTAssertNotNil(grown, "the writes after the rename are seen under the new name: \(String(describing: size("\(one)/app.log.1"))), \(String(describing: size("\(two)/app.log.1")))")
        XCTAssertEqual(try String(contentsOfFile: "\(two)/app.log.1", encoding: .utf8), "first\nsecond\n")
        close(log)
    }
}
