@testable import FSGateway
import Dispatch
import Synchronization
import XCTest

/// The order and the waits of queued writes (`WriteBehind`), with sends held until the test
/// lets them go: overlapping writes wait for each other through any handle of the file, and a
/// drain waits only for the writes in flight when it began.
final class WriteBehindTests: XCTestCase {
    private let identity = HardLinks.Identity(node: 2, dev: 7, ino: 42)

    /// A send that records its bytes' first value and returns once `gate` is signalled.
    private func held(_ gate: DispatchSemaphore, _ sent: SendLog) -> @Sendable ([UInt8]) -> Int32 {
        { data in
            gate.wait()
            sent.append(data[0])
            return 0
        }
    }

    func testADrainWaitsOnlyForTheWritesInFlightWhenItBegan() {
        let queue = WriteBehind()
        queue.track(1, node: 2, path: "f", identity: identity)
        let file = queue.file(1)!
        let (first, second) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let sent = SendLog()
        XCTAssertEqual(queue.write(file, by: 1, offset: 0, data: [1], send: held(first, sent)), 1)
        let drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            file.drain()
            drained.signal()
        }
        XCTAssertEqual(drained.wait(timeout: .now() + .milliseconds(200)), .timedOut, "the drain waits for the write in flight")
        // A later write, at another offset, stays in flight while the drain goes on.
        XCTAssertEqual(queue.write(file, by: 1, offset: 100, data: [2], send: held(second, sent)), 1)
        first.signal()
        XCTAssertEqual(drained.wait(timeout: .now() + .seconds(10)), .success, "and not for the one queued after it began")
        second.signal()
        queue.finish(1)
        XCTAssertEqual(sent.values, [1, 2])
    }

    func testAnOverlappingWriteThroughAnotherHandleOfTheFileWaitsForTheFirst() {
        let queue = WriteBehind()
        queue.track(1, node: 2, path: "f", identity: identity)
        queue.track(2, node: 2, path: "link-of-f", identity: identity)
        queue.track(3, node: 2, path: "other", identity: HardLinks.Identity(node: 2, dev: 7, ino: 43))
        let (gate, open) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let sent = SendLog()
        XCTAssertEqual(queue.write(queue.file(1)!, by: 1, offset: 0, data: [1, 1, 1, 1], send: held(gate, sent)), 4)
        // Another file is not held up; the same file, through another name, is.
        XCTAssertEqual(queue.write(queue.file(3)!, by: 1, offset: 0, data: [3], send: held(open, sent)), 1)
        open.signal()
        queue.finish(3)
        let queued = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = queue.write(queue.file(2)!, by: 1, offset: 2, data: [2, 2], send: { data in sent.append(data[0]); return 0 })
            queued.signal()
        }
        XCTAssertEqual(queued.wait(timeout: .now() + .milliseconds(200)), .timedOut, "the overlapping write waits")
        gate.signal()
        XCTAssertEqual(queued.wait(timeout: .now() + .seconds(10)), .success)
        for id: UInt64 in [1, 2] { queue.finish(id) }
        XCTAssertEqual(sent.values, [3, 1, 2], "sent in the order made")
    }
}

/// The first byte of each send, in the order they were made.
private final class SendLog: Sendable {
    private let sent = Mutex<[UInt8]>([])

    func append(_ value: UInt8) { sent.withLock { $0.append(value) } }
    var values: [UInt8] { sent.withLock { $0 } }
}
