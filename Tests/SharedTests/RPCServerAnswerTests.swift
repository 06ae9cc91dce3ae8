import Foundation
import Synchronization
import XCTest

@testable import Shared

/// What a server does with answers it cannot send as they are, with handlers that fail, and
/// with the log lines about peers who send bad input.
final class RPCServerAnswerTests: XCTestCase {
    func testAnAnswerLargerThanAFrameIsRefusedAloneAndTheOtherCallsGoOn() async throws {
        let logs = CapturedLogs()
        let fixture = try RPCFixture(serverLogger: logs.logger("test-server"))
        let tooLarge = [UInt8](repeating: 1, count: Frame.defaultMaxSize)
        fixture.server.register("Big") { _ in tooLarge }
        fixture.server.registerImmediate("BigNow") { _ in tooLarge }
        fixture.server.register("Slow") { _ in
            try await Task.sleep(for: .milliseconds(300))
            return [1]
        }
        try await fixture.listen()
        let client = fixture.tcpClient()
        // Slow is in flight on the same connection while the oversize answers are refused.
        let slow = Task { try await client.call("Slow", []) }
        for method in ["Big", "BigNow"] {
            await assertRPCError(.resourceExhausted, containing: "\(method): the answer of") { try await client.call(method, []) }
        }
        let slowAnswer = try await slow.value
        XCTAssertEqual(slowAnswer, [1], "the connection and its other calls went on")
        XCTAssertTrue(logs.all.contains { $0.contains("refused to send 127.0.0.1") && $0.contains("BigNow: the answer of") }, "\(logs.all)")
        await fixture.close()
    }

    func testAHandlersUnexpectedErrorIsInternalAndLoggedWithTheMethodAndCaller() async throws {
        let logs = CapturedLogs()
        let fixture = try RPCFixture(serverLogger: logs.logger("test-server"))
        fixture.server.register("Broken") { _ in throw POSIXError(.EIO) }
        try await fixture.listen()
        await assertRPCError(.internal, containing: "Broken") { try await fixture.tcpClient().call("Broken", []) }
        XCTAssertTrue(logs.all.contains { $0.hasPrefix("error: test server: Broken from 127.0.0.1 failed: ") }, "\(logs.all)")
        await fixture.close()
    }

    func testTheCallsOfAConnectionThatClosedAreCancelledAndTheDrainDoesNotWaitForThem() async throws {
        let fixture = try RPCFixture()
        let running = Atomic(0)
        for (method, placement) in [("ParkOnLoop", RPCServer.Placement.loop), ("ParkOnPool", .pool)] {
            fixture.server.register(method, on: placement) { _ in
                running.add(1, ordering: .relaxed)
                defer { running.subtract(1, ordering: .relaxed) }
                try await Task.sleep(for: .seconds(60))
                return []
            }
        }
        try await fixture.listen()
        var raw: RawSocket? = try RawSocket(port: fixture.port)
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        let calls = (1...20).flatMap { id in
            Envelope(callID: UInt64(id), kind: .request, method: id % 2 == 0 ? "ParkOnLoop" : "ParkOnPool")
                .frame(signedBy: signer, to: fixture.service).withBytes { Array($0) }
        }
        raw!.send(calls)
        let parked = await waitUntil { running.load(ordering: .relaxed) == 20 }
        XCTAssertTrue(parked, "\(running.load(ordering: .relaxed)) of 20 calls running")
        raw = nil
        let ended = await waitUntil { running.load(ordering: .relaxed) == 0 }
        XCTAssertTrue(ended, "\(running.load(ordering: .relaxed)) calls still running for a caller who left")
        let started = ContinuousClock.now
        await fixture.server.shutdown(grace: .seconds(30))
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10), "the drain waited for calls nobody waits for")
        await fixture.close()
    }

    func testAPeerSendingBadInputWithoutEndGetsOneLogLineAWhile() async throws {
        let logs = CapturedLogs()
        let fixture = try RPCFixture(serverLogger: logs.logger("test-server"))
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        for _ in 1...50 {
            raw.send([0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            XCTAssertEqual(raw.readEnvelope()?.status, .invalidArgument, "each is answered")
        }
        let lines = logs.all.filter { $0.contains("malformed envelope from 127.0.0.1") }
        XCTAssertEqual(lines.count, 1, "\(lines)")
        await fixture.close()
    }

    func testTheLineThatGoesThroughAfterAnIntervalSaysHowManyWereHeldBack() {
        var throttle = LogThrottle(intervalNs: 1_000)
        XCTAssertEqual(throttle.admit("a", nowNs: 10_000), 0)
        XCTAssertNil(throttle.admit("a", nowNs: 10_500))
        XCTAssertEqual(throttle.admit("b", nowNs: 10_500), 0, "another peer has its own interval")
        XCTAssertNil(throttle.admit("a", nowNs: 10_999))
        XCTAssertEqual(throttle.admit("a", nowNs: 11_000), 2)
        XCTAssertEqual(LogThrottle.heldBack(2), " (2 more from this peer held back in the last interval)")
        XCTAssertEqual(LogThrottle.heldBack(0), "")
    }
}
