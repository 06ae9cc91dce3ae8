import Foundation
import XCTest

/// Files unlinked or renamed over through /mfs while open, or just after their close: the
/// open ones stay readable, no `.fuse_hidden…` file is left once the last one closes, and the
/// name is free at once for a new file (lock files, git).
final class MfsUnlinkEndToEndTests: XCTestCase {
    /// The names in `directory` on the disk.
    private func names(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    func testFilesUnlinkedOpenOrJustClosedLeaveNoHiddenFileBehind() async throws {
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 103, "scratch")

        // Through another node's gateway (TCP) and through the node's own (Unix socket).
        for node in [2, 1] {
            let remote = "\(cluster.dir)/node-1/mfs/\(node)\(disk)"

            // Closed, then unlinked at once (temporary files, SQLite's journal): the kernel
            // sends the release after close returns, so libfuse often still takes the file for
            // open and hides it; 3.14 lost some of those hidden files for good.
            for index in 0..<300 {
                let path = "\(remote)/temp\(index)"
                let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
                XCTAssertGreaterThanOrEqual(fd, 0, path)
                XCTAssertEqual(write(fd, "x", 1), 1)
                XCTAssertEqual(close(fd), 0)
                XCTAssertEqual(unlink(path), 0, path)
            }
            let emptied = await cluster.waitFor(seconds: 10) { self.names(disk).isEmpty }
            XCTAssertNotNil(emptied, "through /mfs/\(node), files unlinked after their close leave nothing: \(names(disk).count) left, \(names(disk).prefix(3)) ...")

            // A lock file given up (git's config.lock when nothing changed): created, closed and
            // unlinked, then made again at once with O_EXCL, which must find the name free.
            for round in 0..<50 {
                let lock = "\(remote)/config.lock"
                let first = open(lock, O_RDWR | O_CREAT | O_EXCL, 0o666)
                XCTAssertGreaterThanOrEqual(first, 0, "round \(round): \(String(cString: strerror(errno)))")
                close(first)
                XCTAssertEqual(unlink(lock), 0)
                let again = open(lock, O_RDWR | O_CREAT | O_EXCL, 0o666)
                XCTAssertGreaterThanOrEqual(again, 0, "round \(round), made again: \(String(cString: strerror(errno)))")
                close(again)
                XCTAssertEqual(unlink(lock), 0)
            }
            // git itself, which takes and gives up such locks all along.
            let git = LocalCluster.runAbsolute("/bin/sh", ["-c", """
                set -e; cd '\(remote)'; git init -q repo; cd repo; echo one > file; git add file
                git -c user.email=omx@test -c user.name=omx commit -qm one; git config omx.test yes; git status --short; git fsck >/dev/null
                """])
            XCTAssertEqual(git.status, 0, "git through /mfs/\(node): \(git.stderr)")
            XCTAssertEqual(git.stdout, "", "a clean work tree")
            XCTAssertEqual(LocalCluster.runAbsolute("/bin/rm", ["-rf", "\(remote)/repo"]).status, 0)
            let cleared = await cluster.waitFor(seconds: 10) { self.names(disk).isEmpty }
            XCTAssertNotNil(cleared, "through /mfs/\(node), nothing is left: \(names(disk))")

            // Unlinked while open: still read and stat'ed through the open descriptor; renamed
            // over while open: the same. Both names go with the last close.
            let held = open("\(remote)/held", O_RDWR | O_CREAT, 0o644)
            XCTAssertEqual(write(held, "kept", 4), 4)
            XCTAssertEqual(unlink("\(remote)/held"), 0)
            var buffer = [UInt8](repeating: 0, count: 8)
            XCTAssertEqual(pread(held, &buffer, 8, 0), 4)
            XCTAssertEqual(String(decoding: buffer.prefix(4), as: UTF8.self), "kept", "an unlinked open file reads on")
            var info = stat()
            XCTAssertEqual(fstat(held, &info), 0)
            XCTAssertEqual(info.st_size, 4)
            let target = open("\(remote)/target", O_RDWR | O_CREAT, 0o644)
            XCTAssertEqual(write(target, "old", 3), 3)
            XCTAssertTrue(FileManager.default.createFile(atPath: "\(remote)/new", contents: Data("new".utf8)))
            XCTAssertEqual(rename("\(remote)/new", "\(remote)/target"), 0)
            XCTAssertEqual(pread(target, &buffer, 8, 0), 3)
            XCTAssertEqual(String(decoding: buffer.prefix(3), as: UTF8.self), "old", "a file renamed over reads on")
            XCTAssertEqual(names(disk).filter { !$0.hasPrefix(".fuse_hidden") }, ["target"])
            XCTAssertEqual(close(held), 0)
            XCTAssertEqual(close(target), 0)
            let settled = await cluster.waitFor(seconds: 10) { self.names(disk) == ["target"] }
            XCTAssertNotNil(settled, "through /mfs/\(node), the last close removes the hidden names: \(names(disk).count) left, \(names(disk).prefix(3)) ...")
            XCTAssertEqual(try String(contentsOfFile: "\(disk)/target", encoding: .utf8), "new")
            XCTAssertEqual(unlink("\(disk)/target"), 0)
        }
        await cluster.down()
    }
}
