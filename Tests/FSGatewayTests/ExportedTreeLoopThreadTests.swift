import Foundation
import Glibc
@testable import FSGateway
import Shared
import XCTest

/// The gateway's loop thread never follows a symlink off the export root's file system (it
/// may lead into a mount that hangs): the tree refuses with `LeavesLoopThread`, and the same
/// call works off the loop thread.
final class ExportedTreeLoopThreadTests: XCTestCase {
    func testTheLoopThreadFollowsNoSymlinkOffTheRootsFileSystemAndOtherThreadsDo() async throws {
        guard getuid() == 0 else {
            XCTFail("mounting a tmpfs inside the export needs root; this test cannot run")
            throw XCTSkip("not root")
        }
        let export = "\(NSTemporaryDirectory())omx-loop-tree-\(getpid())"
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        defer { removeTree(export) }
        let mounted = "\(export)/mounted"
        try FileManager.default.createDirectory(atPath: mounted, withIntermediateDirectories: true)
        let mount = try ChildProcess.spawn("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "omx-test", mounted], stdoutPath: "/dev/null")
        XCTAssertEqual(mount.wait(), 0, "mount tmpfs on \(mounted)")
        defer { _ = try? ChildProcess.spawn("/bin/umount", ["-l", mounted], stdoutPath: "/dev/null").wait() }
        try Data("on tmpfs".utf8).write(to: URL(fileURLWithPath: "\(mounted)/file"))
        try FileManager.default.createDirectory(atPath: "\(export)/plain", withIntermediateDirectories: true)
        try Data("on the root's".utf8).write(to: URL(fileURLWithPath: "\(export)/plain/file"))
        XCTAssertEqual(symlink("mounted", "\(export)/away"), 0)
        XCTAssertEqual(symlink("plain", "\(export)/near"), 0)

        let loop = try EventLoop()
        let tree = try ExportedTree(root: export, exclude: [], loop: loop)
        let onLoop = try await loop.submit { () -> [String: String] in
            var outcomes: [String: String] = [:]
            for (name, call) in [
                ("getattr away/file", { _ = try tree.getattr("away/file") }),
                ("open away/file", { close(try tree.open("away/file", flags: O_RDONLY, mode: 0).fd) }),
                ("statfs away", { _ = try tree.statfs("away") }),
                ("getattr mounted/file", { _ = try tree.getattr("mounted/file") }),
                ("getattr near/file", { _ = try tree.getattr("near/file") }),
                ("statfs near", { _ = try tree.statfs("near") }),
            ] as [(String, () throws -> Void)] {
                do {
                    try call()
                    outcomes[name] = "done"
                } catch let leaving as ExportedTree.LeavesLoopThread {
                    outcomes[name] = "leaves the loop thread at \(leaving.path)"
                } catch {
                    outcomes[name] = "\(error)"
                }
            }
            return outcomes
        }
        XCTAssertEqual(onLoop["getattr away/file"], "leaves the loop thread at away", "a symlink into another file system is not followed")
        XCTAssertEqual(onLoop["open away/file"], "leaves the loop thread at away")
        XCTAssertEqual(onLoop["statfs away"], "leaves the loop thread at away")
        XCTAssertEqual(onLoop["getattr mounted/file"], "done", "a mount on a name as written is the lane's decision (the mount table's)")
        XCTAssertEqual(onLoop["getattr near/file"], "done", "a symlink that stays on the root's file system is followed")
        XCTAssertEqual(onLoop["statfs near"], "done")

        // Off the loop thread (where such calls go) the symlink is followed.
        XCTAssertEqual(try tree.getattr("away/file").size, 8)
        let (fd, _) = try tree.open("away/file", flags: O_RDONLY, mode: 0)
        close(fd)
        XCTAssertGreaterThan(try tree.statfs("away").blocks, 0)
        await loop.shutdown()
    }
}
