import XCTest

@testable import FSGateway

/// Paths are split and compared by their bytes, as the kernel reads them.
final class PathBytesTests: XCTestCase {
    func testPathsSplitAndCompareByTheirBytes() {
        // "/" then a combining mark is one Swift character, but two bytes apart for the kernel.
        XCTAssertEqual("nfs/\u{301}x/y".pathNames, ["nfs", "\u{301}x", "y"])
        XCTAssertTrue("/r/nfs/\u{301}x".isPath(atOrBeneath: "/r/nfs"))
        XCTAssertTrue("/r/nfs".isPath(atOrBeneath: "/r/nfs"))
        XCTAssertFalse("/r/nfsx".isPath(atOrBeneath: "/r/nfs"))
        XCTAssertTrue("/x".isPath(atOrBeneath: "/"))
        // "é" and "e" + U+0301 are one Swift string, two names on the disk.
        XCTAssertFalse("/caf\u{E9}".isSamePath(as: "/cafe\u{301}"))
    }
}
