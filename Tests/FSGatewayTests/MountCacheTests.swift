import Glibc
import Shared
import XCTest

@testable import FSGateway

final class MountCacheTests: XCTestCase {
    private func file(size: UInt64 = 1, links: UInt32 = 1) -> FileAttr {
        var attr = FileAttr()
        attr.mode = UInt32(S_IFREG) | 0o644
        attr.nlink = links
        attr.size = size
        return attr
    }

    private func directory() -> FileAttr {
        var attr = FileAttr()
        attr.mode = UInt32(S_IFDIR) | 0o755
        attr.nlink = 2
        return attr
    }

    func testNothingIsCachedForANodeWhoseChangesAreNotFollowed() {
        let cache = MountCache()
        cache.remember(2, "a", file(), for: .root, since: cache.generation(2))
        XCTAssertEqual(cache.lookup(2, "a", for: .root), .unknown)
        cache.follow(2, unwatched: [])
        cache.remember(2, "a", file(), for: .root, since: cache.generation(2))
        XCTAssertEqual(cache.lookup(2, "a", for: .root), .attr(file()))
        cache.stopFollowing(2)
        XCTAssertEqual(cache.lookup(2, "a", for: .root), .unknown, "stopping empties it")
    }

    func testAnAnswerAskedForBeforeAChangeIsNotKept() {
        let cache = MountCache()
        cache.follow(1, unwatched: [])
        let generation = cache.generation(1)
        cache.apply(1, TreeChange(path: "a", entry: false))
        cache.remember(1, "a", file(), for: .root, since: generation)
        XCTAssertEqual(cache.lookup(1, "a", for: .root), .unknown, "the answer may predate the change")
    }

    func testOnlyADirectoryTheMountMadeAnswersMissingNames() {
        let cache = MountCache()
        cache.follow(1, unwatched: [])
        cache.rememberListing(1, "listed", [("x", file())], for: .root, since: cache.generation(1))
        XCTAssertEqual(cache.lookup(1, "listed/x", for: .root), .attr(file()))
        XCTAssertEqual(cache.lookup(1, "listed/new", for: .root), .unknown, "another node may have just created it")
        cache.created(1, "d", directory(), by: .root, emptyDirectory: true)
        XCTAssertEqual(cache.lookup(1, "d/z", for: .root), .missing)
        cache.created(1, "d/z", file(size: 3), by: .root)
        XCTAssertEqual(cache.lookup(1, "d/z", for: .root), .attr(file(size: 3)), "the mount's own create")
        cache.created(1, "d/y", file(size: 2), by: .root)
        cache.removed(1, "d/z", directory: false)
        XCTAssertEqual(cache.lookup(1, "d/z", for: .root), .missing, "the mount's own unlink")
        cache.renamed(1, "d/y", to: "d/w")
        XCTAssertEqual(cache.lookup(1, "d/y", for: .root), .missing)
        XCTAssertEqual(cache.lookup(1, "d/w", for: .root), .unknown)
        cache.created(1, "d/u", file(size: 4), by: .root)
        cache.renamed(1, "d/w", to: "d/u", exchanged: true)
        XCTAssertEqual(cache.lookup(1, "d/w", for: .root), .unknown, "an exchange keeps both names")
        XCTAssertEqual(cache.lookup(1, "d/u", for: .root), .unknown)
        cache.apply(1, TreeChange(path: "d/q", entry: true))
        XCTAssertEqual(cache.lookup(1, "d/q", for: .root), .unknown, "someone else's entry change: the listing is no longer known")
        XCTAssertEqual(cache.lookup(1, "d/v", for: .root), .unknown)
    }

    func testAnEntryChangeEmptiesEverythingBeneathIt() {
        let cache = MountCache()
        cache.follow(1, unwatched: [])
        let generation = cache.generation(1)
        cache.remember(1, "top", directory(), for: .root, since: generation)
        cache.rememberListing(1, "top/sub", [("f", file())], for: .root, since: generation)
        cache.remember(1, "topmost", file(), for: .root, since: generation)
        cache.created(1, "top/made", directory(), by: .root, emptyDirectory: true)
        cache.apply(1, TreeChange(path: "top", entry: true, directory: true))
        XCTAssertEqual(cache.lookup(1, "top/sub/f", for: .root), .unknown)
        XCTAssertEqual(cache.lookup(1, "top/made/g", for: .root), .unknown)
        XCTAssertEqual(cache.lookup(1, "topmost", for: .root), .attr(file()), "a sibling whose name merely starts alike stays")
        cache.remember(1, "dir/f", file(), for: .root, since: cache.generation(1))
        cache.apply(1, TreeChange(path: "dir/f", entry: false))
        XCTAssertEqual(cache.lookup(1, "dir/f", for: .root), .unknown, "a file's new data")
        cache.remember(1, "dir/g", file(), for: .root, since: cache.generation(1))
        cache.apply(1, TreeChange(path: "dir", entry: false, directory: true))
        XCTAssertEqual(cache.lookup(1, "dir/g", for: .root), .unknown, "a directory's new mode: who may look beneath it changed")
    }

    func testAMadeDirectoryIsKnownEmptyAndItsParentForgetsItsAttributes() {
        let cache = MountCache()
        cache.follow(1, unwatched: [])
        cache.remember(1, "p", directory(), for: .root, since: cache.generation(1))
        cache.created(1, "p/new", directory(), by: .root, emptyDirectory: true)
        XCTAssertEqual(cache.lookup(1, "p/new/anything", for: .root), .missing)
        XCTAssertEqual(cache.lookup(1, "p", for: .root), .unknown, "its modification time changed")
    }

    func testACallerGetsOnlyWhatTheGatewayToldThatCaller() {
        let cache = MountCache()
        cache.follow(1, unwatched: [])
        let alice = MountCache.Caller(uid: 1000, gid: 1000, groups: [])
        let bob = MountCache.Caller(uid: 1001, gid: 1001, groups: [])
        let generation = cache.generation(1)
        cache.remember(1, "secret/f", file(), for: alice, since: generation)
        cache.created(1, "mine", directory(), by: alice, emptyDirectory: true)
        XCTAssertEqual(cache.lookup(1, "secret/f", for: alice), .attr(file()))
        XCTAssertEqual(cache.lookup(1, "secret/f", for: bob), .unknown, "bob may not be let into secret: the gateway decides")
        XCTAssertEqual(cache.lookup(1, "mine/g", for: alice), .missing)
        XCTAssertEqual(cache.lookup(1, "mine/g", for: bob), .unknown)
        XCTAssertEqual(cache.lookup(1, "mine/g", for: .root), .missing, "root passes every permission check")
        cache.remember(1, "secret/f", file(), for: bob, since: cache.generation(1))
        XCTAssertEqual(cache.lookup(1, "secret/f", for: bob), .attr(file()))
        cache.changed(1, "secret")
        XCTAssertEqual(cache.lookup(1, "secret/f", for: alice), .unknown, "a directory's new mode may let fewer callers in")
    }

    func testFilesWithSeveralNamesAndUnwatchedSubtreesAreNotKept() {
        let cache = MountCache()
        cache.follow(1, unwatched: ["mnt/usb"])
        let generation = cache.generation(1)
        cache.remember(1, "hard", file(links: 2), for: .root, since: generation)
        cache.remember(1, "mnt/usb/f", file(), for: .root, since: generation)
        cache.remember(1, "mnt/usbfile", file(), for: .root, since: generation)
        XCTAssertEqual(cache.lookup(1, "hard", for: .root), .unknown)
        XCTAssertEqual(cache.lookup(1, "mnt/usb/f", for: .root), .unknown)
        XCTAssertEqual(cache.lookup(1, "mnt/usbfile", for: .root), .attr(file()))
        let everything = MountCache()
        everything.follow(1, unwatched: [""])
        everything.remember(1, "a", file(), for: .root, since: everything.generation(1))
        XCTAssertEqual(everything.lookup(1, "a", for: .root), .unknown, "nothing is watched: nothing is kept")
    }
}
