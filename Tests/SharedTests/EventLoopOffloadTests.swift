import Foundation
import Synchronization
import XCTest

@testable import Shared

/// Work handed to libuv's thread pool: it runs off the loop thread, the loop keeps serving
/// meanwhile, and a loop that stops neither waits for work that hangs nor runs work not begun.
final class EventLoopOffloadTests: XCTestCase {
    /// A pipe whose read end blocks until bytes are written to it: a stand-in for a call stuck
    /// on a hung file system, released at will.
    private final class Gate: Sendable {
        let readEnd: Int32
        let writeEnd: Int32

        init() {
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            (readEnd, writeEnd) = (fds[0], fds[1])
        }

        /// Blocks until `open` lets one waiter through.
        func wait() {
            var byte: UInt8 = 0
            _ = read(readEnd, &byte, 1)
        }

        func open(_ waiters: Int) {
            let bytes = [UInt8](repeating: 1, count: waiters)
            _ = write(writeEnd, bytes, waiters)
        }
    }

    func testOffloadedWorkRunsOffTheLoopThreadWhileTheLoopKeepsServing() async throws {
        let loop = try EventLoop()
        let gate = Gate()
        let blocked = Task { try await loop.offload { () -> Bool in
            gate.wait()
            return loop.inLoop
        } }
        // The loop answers while the offloaded work waits.
        for _ in 0..<10 {
            let onLoop = try await loop.submit { loop.inLoop }
            XCTAssertTrue(onLoop)
        }
        gate.open(1)
        let ranOnLoop = try await blocked.value
        XCTAssertFalse(ranOnLoop, "offloaded work ran on a pool thread")

        // Many at once, from the loop thread and from elsewhere: each gets its own result.
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for index in 0..<200 {
                group.addTask(executorPreference: index.isMultiple(of: 2) ? loop : nil) {
                    (index, try await loop.offload { index * index })
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        XCTAssertEqual(results.count, 200)
        XCTAssertTrue(results.allSatisfy { $0.value == $0.key * $0.key })
        await loop.shutdown()
    }

    func testAStoppingLoopCancelsWorkNotBegunAndDoesNotWaitForWorkThatHangs() async throws {
        let loop = try EventLoop()
        let gate = Gate()
        let started = Atomic<Int>(0)
        let cancelled = Atomic<Int>(0)
        // More than libuv's pool has threads (4 unless UV_THREADPOOL_SIZE says otherwise): some
        // hang, the others wait in libuv's queue.
        let count = 24
        for _ in 0..<count {
            Task {
                do {
                    try await loop.offload {
                        started.add(1, ordering: .relaxed)
                        gate.wait()
                    }
                } catch let error as UVError where error.name == "ECANCELED" {
                    cancelled.add(1, ordering: .relaxed)
                }
            }
        }
        let deadline = Date().addingTimeInterval(10)
        while started.load(ordering: .relaxed) == 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(200))
        let running = started.load(ordering: .relaxed)
        XCTAssertGreaterThan(running, 0)
        XCTAssertLessThan(running, count, "libuv's pool has fewer threads than the work offloaded")

        let stopping = Date()
        await loop.shutdown()
        let took = Date().timeIntervalSince(stopping)
        XCTAssertLessThan(took, 30, "the loop stopped although \(running) offloaded calls still hang")
        XCTAssertGreaterThanOrEqual(took, Double(EventLoop.offloadedWorkGraceMs) / 1_000 - 0.1, "it gave them their grace first")
        while cancelled.load(ordering: .relaxed) < count && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(cancelled.load(ordering: .relaxed), count, "the work not begun was cancelled, the work still hanging given up on: every caller heard")
        XCTAssertEqual(started.load(ordering: .relaxed), running, "no work began after the loop stopped")
        // Let the hung threads go, for the tests after this one.
        gate.open(count)
    }
}
