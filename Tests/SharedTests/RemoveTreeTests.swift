import Foundation
import Glibc
import Shared
import XCTest

/// removeTree removes a tree on its own file system and never reaches through a mount point
/// into another tree (a local cluster's /mfs shows every node's whole root).
final class RemoveTreeTests: XCTestCase {
    private func mount(_ arguments: [String]) -> Int32? {
        (try? ChildProcess.spawn("/bin/mount", arguments, stdoutPath: "/dev/null", stderrPath: "/dev/null"))?.wait()
    }

    private func umount(_ path: String) {
        _ = (try? ChildProcess.spawn("/bin/umount", ["-l", path], stdoutPath: "/dev/null", stderrPath: "/dev/null"))?.wait()
    }

    func testItLeavesWhatIsMountedInTheTreeAndRemovesTheRest() throws {
        guard getuid() == 0 else {
            XCTFail("mounting inside the tree needs root; this test cannot run")
            throw XCTSkip("not root")
        }
        let base = "\(NSTemporaryDirectory())omx-remove-tree-\(getpid())"
        let tree = "\(base)/tree", elsewhere = "\(base)/elsewhere"
        let files = FileManager.default
        for directory in ["\(tree)/sub/deeper", "\(tree)/tmpfs", "\(tree)/bound", elsewhere] {
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try Data("a".utf8).write(to: URL(fileURLWithPath: "\(tree)/sub/deeper/file"))
        XCTAssertEqual(symlink(elsewhere, "\(tree)/link"), 0)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: "\(elsewhere)/kept"))
        // Another file system, and a bind mount of this one (the same device: only the mount
        // table tells it is one).
        XCTAssertEqual(mount(["-t", "tmpfs", "-o", "size=1m", "omx-test", "\(tree)/tmpfs"]), 0)
        defer { umount("\(tree)/tmpfs") }
        XCTAssertEqual(mount(["--bind", elsewhere, "\(tree)/bound"]), 0)
        defer { umount("\(tree)/bound") }
        try Data("on tmpfs".utf8).write(to: URL(fileURLWithPath: "\(tree)/tmpfs/file"))

        XCTAssertFalse(removeTree(tree), "the mount points are left, so the tree is not all gone")
        XCTAssertTrue(files.fileExists(atPath: "\(tree)/tmpfs/file"), "nothing on the tmpfs mounted in it is removed")
        XCTAssertTrue(files.fileExists(atPath: "\(elsewhere)/kept"), "nothing reached through the bind mount or the symlink is removed")
        XCTAssertFalse(files.fileExists(atPath: "\(tree)/sub"), "the tree's own files are gone")
        XCTAssertFalse(removeTree("\(tree)/tmpfs"), "a mount point itself is refused")
        XCTAssertTrue(files.fileExists(atPath: "\(tree)/tmpfs/file"))

        umount("\(tree)/tmpfs")
        umount("\(tree)/bound")
        XCTAssertTrue(removeTree(tree), "once nothing is mounted in it, all of it goes")
        XCTAssertFalse(files.fileExists(atPath: tree))
        XCTAssertTrue(files.fileExists(atPath: "\(elsewhere)/kept"))
        XCTAssertTrue(removeTree(base))
    }

    func testNamesThatAreNoUTF8AreRemovedToo() throws {
        let tree = "\(NSTemporaryDirectory())omx-remove-names-\(getpid())"
        XCTAssertEqual(mkdir(tree, 0o755), 0)
        // "caf\xE9" (Latin-1) as a directory holding a file "\xFF\xFE".
        let directory: [CChar] = Array(tree.utf8CString.dropLast()) + [0x2F, 0x63, 0x61, 0x66, CChar(bitPattern: 0xE9), 0]
        XCTAssertEqual(mkdir(directory, 0o755), 0)
        let file: [CChar] = Array(directory.dropLast()) + [0x2F, CChar(bitPattern: 0xFF), CChar(bitPattern: 0xFE), 0]
        let fd = open(file, O_WRONLY | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        close(fd)
        XCTAssertTrue(removeTree(tree), "every name went, whatever its bytes")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tree))
    }
}
