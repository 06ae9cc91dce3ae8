@testable import FSGateway
import Glibc
import Shared
import XCTest

/// Which names the mount keeps for a file with several hard links (`HardLinks`), through
/// links, unlinks, renames of the names and of their directories, and exchanges.
final class HardLinksTests: XCTestCase {
    private func file(_ ino: UInt64, links: UInt32, dev: UInt64 = 7) -> FileAttr {
        var attr = FileAttr()
        attr.ino = ino
        attr.dev = dev
        attr.mode = UInt32(S_IFREG) | 0o644
        attr.nlink = links
        return attr
    }

    func testOnlyFilesWithSeveralLinksAreKept() {
        let links = HardLinks()
        links.saw(2, "kept", file(9, links: 2))
        links.saw(2, "a", file(10, links: 1))
        links.saw(2, "b", file(10, links: 1))
        XCTAssertEqual(links.siblings(2, "a"), [])
        var directory = file(11, links: 3)
        directory.mode = UInt32(S_IFDIR) | 0o755
        links.saw(2, "d", directory)
        links.saw(2, "e", directory)
        XCTAssertEqual(links.siblings(2, "d"), [], "a directory's links are its subdirectories")
        links.saw(2, "kept too", file(9, links: 2))
        XCTAssertEqual(links.siblings(2, "kept"), ["kept too"])
        XCTAssertEqual(links.removed(2, "kept"), ["kept too"])
        XCTAssertEqual(links.removed(2, "kept too"), [])
        links.saw(2, "a", file(10, links: 2))
        links.saw(2, "b", file(10, links: 2))
        XCTAssertEqual(links.siblings(2, "a"), ["b"], "kept again once the table was empty")
    }

    func testNamesOfOneFileAreEachOthersSiblings() {
        let links = HardLinks()
        links.saw(2, "a", file(10, links: 3))
        links.saw(2, "dir/b", file(10, links: 3))
        links.saw(2, "c", file(10, links: 3))
        links.saw(2, "other", file(11, links: 2))
        links.saw(2, "same-ino-other-device", file(10, links: 2, dev: 8))
        links.saw(3, "a2", file(10, links: 2))
        XCTAssertEqual(Set(links.siblings(2, "a")), ["dir/b", "c"])
        XCTAssertEqual(Set(links.siblings(2, "x", identity: (dev: 7, ino: 10))), ["a", "dir/b", "c"], "by the open file's identity")
        XCTAssertEqual(links.siblings(2, "unknown"), [])
        // A name seen with one link left, or naming another file now, is no sibling any more.
        links.saw(2, "c", file(12, links: 2))
        XCTAssertEqual(Set(links.siblings(2, "a")), ["dir/b"])
        links.saw(2, "dir/b", file(10, links: 1))
        XCTAssertEqual(links.siblings(2, "a"), [])
    }

    func testUnlinksAndRenamesMoveTheNames() {
        let links = HardLinks()
        for name in ["a", "dir/b", "c"] { links.saw(2, name, file(10, links: 3)) }
        links.saw(2, "x", file(11, links: 2))
        links.saw(2, "y", file(11, links: 2))
        XCTAssertEqual(Set(links.removed(2, "c")), ["a", "dir/b"], "unlinked: the others changed")
        XCTAssertEqual(links.siblings(2, "a"), ["dir/b"])
        XCTAssertEqual(links.renamed(2, "dir", to: "moved", exchanged: false), [], "nothing was at the new name")
        XCTAssertEqual(links.siblings(2, "a"), ["moved/b"], "a directory's rename takes the names beneath along")
        XCTAssertEqual(links.renamed(2, "a", to: "x", exchanged: false), ["y"], "x's file lost a name")
        XCTAssertEqual(links.siblings(2, "x"), ["moved/b"])
        XCTAssertEqual(links.siblings(2, "y"), [])
        XCTAssertEqual(links.renamed(2, "x", to: "moved/b", exchanged: true), [])
        XCTAssertEqual(links.siblings(2, "x"), ["moved/b"], "exchanged: both names still name the file")
    }

    func testExchangedNamesOfTwoFilesSwapTheirFiles() {
        let links = HardLinks()
        for name in ["a", "a2"] { links.saw(2, name, file(10, links: 2)) }
        for name in ["dir/b", "b2"] { links.saw(2, name, file(11, links: 2)) }
        XCTAssertEqual(links.renamed(2, "a", to: "dir", exchanged: true), [])
        XCTAssertEqual(links.siblings(2, "dir"), ["a2"], "the file named a is now named dir")
        XCTAssertEqual(links.siblings(2, "a/b"), ["b2"], "and the directory's names moved beneath a")
        XCTAssertEqual(links.siblings(2, "dir/b"), [])
    }

    func testTheTableStartsAgainPastItsLimit() {
        let links = HardLinks(limit: 4)
        for index in 0..<4 { links.saw(2, "n\(index)", file(10, links: 5)) }
        links.saw(2, "n4", file(10, links: 5))
        XCTAssertEqual(links.siblings(2, "n4"), [])
        links.saw(2, "n5", file(10, links: 5))
        XCTAssertEqual(links.siblings(2, "n4"), ["n5"])
    }
}
