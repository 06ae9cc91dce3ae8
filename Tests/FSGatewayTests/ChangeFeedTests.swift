import Shared
import XCTest

@testable import FSGateway

final class ChangeFeedTests: XCTestCase {
    private func change(_ path: String, entry: Bool = false) -> TreeChange { TreeChange(path: path, entry: entry) }

    func testAFollowerGetsEveryOtherOriginsChangesInOrderButNotItsOwn() async {
        let feed = ChangeFeed()
        feed.setWatching(true, unwatched: ["mnt/usb"])
        let start = await feed.changes(since: 0, client: 7, waitMs: 1_000)
        XCTAssertTrue(start.changes.isEmpty, "asking from 0 says where the feed stands, at once")
        XCTAssertTrue(start.watching)
        XCTAssertEqual(start.unwatched, ["mnt/usb"])
        feed.record(change("a", entry: true), origin: 0)
        feed.record(change("b"), origin: 7)
        feed.record(change("c"), origin: 9)
        let answer = await feed.changes(since: start.next, client: 7, waitMs: 1_000)
        XCTAssertEqual(answer.changes, [change("a", entry: true), change("c")], "client 7's own change is left out")
        XCTAssertFalse(answer.reset)
        let other = await feed.changes(since: start.next, client: 9, waitMs: 0)
        XCTAssertEqual(other.changes, [change("a", entry: true), change("b")])
        let later = await feed.changes(since: answer.next, client: 7, waitMs: 0)
        XCTAssertTrue(later.changes.isEmpty)
        XCTAssertEqual(later.next, answer.next)
    }

    func testAPollWaitsForAChangeAndIsNotWokenByItsOwn() async throws {
        let feed = ChangeFeed()
        let start = await feed.changes(since: 0, client: 1, waitMs: 0)
        let poll = Task { await feed.changes(since: start.next, client: 1, waitMs: 10_000) }
        try await Task.sleep(for: .milliseconds(100))
        feed.record(change("mine"), origin: 1)
        try await Task.sleep(for: .milliseconds(100))
        feed.record(change("theirs"), origin: 2)
        let began = monotonicNs()
        let answer = await poll.value
        XCTAssertEqual(answer.changes, [change("theirs")])
        XCTAssertLessThan(monotonicNs() - began, 5_000_000_000, "answered when the change came, not at the deadline")
    }

    func testAPollWithNothingNewEndsAtItsDeadline() async {
        let feed = ChangeFeed()
        let start = await feed.changes(since: 0, client: 1, waitMs: 0)
        let answer = await feed.changes(since: start.next, client: 1, waitMs: 300)
        XCTAssertTrue(answer.changes.isEmpty)
        XCTAssertFalse(answer.reset)
    }

    func testAFollowerTooFarBehindOrFromAnotherFeedIsToldToForget() async {
        let feed = ChangeFeed(capacity: 8)
        let start = await feed.changes(since: 0, client: 1, waitMs: 0)
        for index in 0..<20 { feed.record(change("f\(index)"), origin: 2) }
        let behind = await feed.changes(since: start.next, client: 1, waitMs: 0)
        XCTAssertTrue(behind.reset, "the oldest changes are gone")
        let stranger = await feed.changes(since: behind.next + 1_000, client: 1, waitMs: 0)
        XCTAssertTrue(stranger.reset, "a position this feed never gave (a restarted gateway's)")
        feed.loseEverything()
        let lost = await feed.changes(since: behind.next, client: 1, waitMs: 0)
        XCTAssertTrue(lost.reset, "the kernel dropped events")
        let after = await feed.changes(since: lost.next, client: 1, waitMs: 0)
        XCTAssertFalse(after.reset)
    }

    func testRepeatedChangesToOneFileAreKeptOnce() async {
        let feed = ChangeFeed()
        let start = await feed.changes(since: 0, client: 1, waitMs: 0)
        for _ in 0..<100 { feed.record(change("log"), origin: 2) }
        feed.record(change("other"), origin: 2)
        feed.record(change("log"), origin: 2)
        let answer = await feed.changes(since: start.next, client: 1, waitMs: 0)
        XCTAssertEqual(answer.changes, [change("log"), change("other"), change("log")])
    }

    func testAChangeRepeatedAfterAPollTookItIsNewsAgain() async {
        let feed = ChangeFeed()
        let start = await feed.changes(since: 0, client: 1, waitMs: 0)
        feed.record(change("log"), origin: 0)
        let first = await feed.changes(since: start.next, client: 1, waitMs: 0)
        XCTAssertEqual(first.changes, [change("log")])
        // The file is written again, nothing else changed meanwhile (a log appended to now
        // and then): the mount that took the first change must hear of this one too.
        feed.record(change("log"), origin: 0)
        let second = await feed.changes(since: first.next, client: 1, waitMs: 0)
        XCTAssertEqual(second.changes, [change("log")])
    }
}
