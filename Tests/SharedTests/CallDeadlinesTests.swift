import Synchronization
import XCTest

@testable import Shared

/// The deadlines of an RPC client's calls, on a real loop and its timer.
final class CallDeadlinesTests: XCTestCase {
    func testDeadlinesExpireEarliestFirstAndStaleOnesGoOnceTheyPileUp() async throws {
        let loop = try EventLoop()
        let told = Mutex<[UInt64]>([])
        let deadlines = try await loop.submit {
            let deadlines = CallDeadlines(loop: loop)
            deadlines.expired = { deadline in told.withLock { $0.append(deadline.callID) } }
            let now = monotonicNs()
            // Call 1 is the only one in flight; calls 2... ended already and left theirs behind.
            let inFlight = CallDeadlines.Deadline(ns: now + 60_000_000, callID: 1)
            deadlines.add(inFlight, liveCount: 1) { [inFlight] }
            for callID in UInt64(2)...1100 {
                deadlines.add(CallDeadlines.Deadline(ns: now + 40_000_000, callID: callID), liveCount: 1) { [inFlight] }
            }
            return deadlines
        }
        let start = monotonicNs()
        while told.withLock({ $0.count }) < 74 && monotonicNs() - start < 5_000_000_000 {
            try await Task.sleep(for: .milliseconds(10))
        }
        // 1,027 deadlines outnumbered 2 x 1 in flight + 1,024: the heap was rebuilt from call 1's
        // before call 1028's went in, and calls 2...1027's were never told.
        XCTAssertEqual(told.withLock { $0 }, Array(1028...1100) + [1])
        try await loop.submit { deadlines.close() }
        await loop.shutdown()
    }

    func testNothingExpiresAfterRemoveAll() async throws {
        let loop = try EventLoop()
        let told = Mutex<[UInt64]>([])
        let deadlines = try await loop.submit {
            let deadlines = CallDeadlines(loop: loop)
            deadlines.expired = { deadline in told.withLock { $0.append(deadline.callID) } }
            deadlines.add(CallDeadlines.Deadline(ns: monotonicNs() + 20_000_000, callID: 7), liveCount: 1) { [] }
            deadlines.removeAll()
            deadlines.add(CallDeadlines.Deadline(ns: monotonicNs() + 30_000_000, callID: 8), liveCount: 1) { [] }
            return deadlines
        }
        let start = monotonicNs()
        while told.withLock({ $0.isEmpty }) && monotonicNs() - start < 5_000_000_000 { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(told.withLock { $0 }, [8], "call 7's deadline went with removeAll; call 8's fired once")
        try await loop.submit { deadlines.close() }
        await loop.shutdown()
    }
}
