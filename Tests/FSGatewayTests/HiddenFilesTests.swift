@testable import FSGateway
import Shared
import XCTest

/// Which hidden files the mount removes itself (`HiddenFiles`): those whose last handle went
/// before libfuse hid them, and those whose last handle goes after; never another file.
final class HiddenFilesTests: XCTestCase {
    private let caller = FsRequest(path: "a/file")

    func testOnlyLibfusesOwnHiddenNamesCount() {
        XCTAssertTrue(HiddenFiles.isHidden("dir/.fuse_hidden0000001a00000003"))
        XCTAssertTrue(HiddenFiles.isHidden(".fuse_hiddenABCDEF0123456789"))
        XCTAssertFalse(HiddenFiles.isHidden("dir/.fuse_hidden"))
        XCTAssertFalse(HiddenFiles.isHidden("dir/.fuse_hidden0000001a0000000"), "15 digits")
        XCTAssertFalse(HiddenFiles.isHidden("dir/.fuse_hidden0000001a0000000g"))
        XCTAssertFalse(HiddenFiles.isHidden(".fuse_hidden0000001a00000003/x"), "a file beneath such a directory")
    }

    func testAFileClosedJustBeforeItWasHiddenIsRemovedAtOnce() {
        var hidden = HiddenFiles()
        XCTAssertNil(hidden.released(node: 2, "a/file") { false })
        XCTAssertTrue(hidden.renamed(node: 2, "a/file", to: "a/.fuse_hidden0000000500000001", exchanged: false, by: caller) { false })
        XCTAssertFalse(hidden.renamed(node: 3, "a/file", to: "a/.fuse_hidden0000000500000002", exchanged: false, by: caller) { false }, "another node's file")
    }

    func testAFileHiddenWhileOpenIsRemovedWithItsLastHandle() {
        var hidden = HiddenFiles()
        let name = "a/.fuse_hidden0000000500000001"
        XCTAssertFalse(hidden.renamed(node: 2, "a/file", to: name, exchanged: false, by: caller) { true })
        XCTAssertNil(hidden.released(node: 2, name) { true }, "another handle is still open")
        XCTAssertEqual(hidden.released(node: 2, name) { false }?.path, "a/file", "the unlinking caller's request")
        XCTAssertNil(hidden.released(node: 2, name) { false }, "once")
    }

    func testRenamesThatAreNoHideRemoveNothing() {
        var hidden = HiddenFiles()
        XCTAssertNil(hidden.released(node: 2, "a/file") { false })
        XCTAssertFalse(hidden.renamed(node: 2, "a/file", to: "a/other", exchanged: false, by: caller) { false }, "an ordinary name")
        XCTAssertFalse(hidden.renamed(node: 2, "a/closed", to: "a/.fuse_hidden0000000500000001", exchanged: false, by: caller) { false }, "a file not closed a moment ago")
        // A hidden file renamed away keeps nothing pending under its old name.
        let name = "a/.fuse_hidden0000000500000002"
        XCTAssertFalse(hidden.renamed(node: 2, "a/open", to: name, exchanged: false, by: caller) { true })
        XCTAssertFalse(hidden.renamed(node: 2, name, to: "a/rescued", exchanged: false, by: caller) { true })
        XCTAssertNil(hidden.released(node: 2, name) { false })
        XCTAssertNil(hidden.released(node: 2, "a/rescued") { false })
    }

    func testOnlyAHideBesideTheFileCounts() {
        var hidden = HiddenFiles()
        XCTAssertNil(hidden.released(node: 2, "a/file") { false })
        XCTAssertFalse(hidden.renamed(node: 2, "a/file", to: "b/.fuse_hidden0000000500000001", exchanged: false, by: caller) { false }, "another directory")
        XCTAssertNil(hidden.released(node: 2, "top") { false })
        XCTAssertTrue(hidden.renamed(node: 2, "top", to: ".fuse_hidden0000000500000002", exchanged: false, by: caller) { false }, "at the top")
    }

    func testAPendingHiddenFileFollowsItsDirectory() {
        var hidden = HiddenFiles()
        let name = "a/.fuse_hidden0000000500000001"
        XCTAssertFalse(hidden.renamed(node: 2, "a/file", to: name, exchanged: false, by: caller) { true })
        XCTAssertFalse(hidden.renamed(node: 2, "a", to: "z", exchanged: false, by: caller) { true })
        XCTAssertNil(hidden.released(node: 2, name) { false }, "no longer there")
        XCTAssertEqual(hidden.released(node: 2, "z/.fuse_hidden0000000500000001") { false }?.path, "a/file")
    }
}
