import CLibUV
import Foundation
import Logging
import XCTest

@testable import Shared

/// A caller polls for its answer for a short while instead of sleeping: only while an answer is
/// awaited, never past its window, and not at all when told not to.
final class AnswerPollingTests: XCTestCase {
    /// Whether `loop` polls for answers now, and how many answers its clients await.
    private func polling(_ loop: EventLoop) async throws -> Polling {
        try await loop.submit { Polling(active: uv_is_active(loop.answerPolling.reinterpreted(as: uv_handle_t.self)) != 0, awaited: loop.answersAwaited) }
    }

    private struct Polling: Equatable {
        let active: Bool
        let awaited: Int
    }

    /// Fails unless `loop` polls as `expected` within 5 s.
    private func assertReaches(_ expected: Polling, on loop: EventLoop, _ message: String = "", line: UInt = #line) async {
        let reached = await waitUntil { (try? await self.polling(loop)) == expected }
        let last = try? await polling(loop)
        XCTAssertTrue(reached, "expected \(expected), found \(String(describing: last)) \(message)", line: line)
    }

    private func client(_ fixture: RPCFixture, polling window: Duration) -> RPCClient {
        var configuration = RPCClient.Configuration(authenticator: Authenticator(key: fixture.key, nodeID: 2))
        configuration.answerPolling = window
        return RPCClient(loop: fixture.clientLoop, endpoint: .tcp(host: "127.0.0.1", port: fixture.port), configuration: configuration, logger: Logger(label: "test-client"))
    }

    /// A server whose "Held" calls answer once `gate` opens.
    private func fixtureHolding(_ gate: Gate) async throws -> RPCFixture {
        let fixture = try RPCFixture()
        fixture.server.register("Held") { request in
            await gate.passed()
            return request.body
        }
        try await fixture.listen()
        return fixture
    }

    /// Runs `during` while a call of a client polling for `window` awaits its answer, then lets
    /// the answer come, checks it was taken, and runs `afterwards`.
    private func whileACallIsHeld(
        polling window: Duration, _ during: (EventLoop) async throws -> Void, afterwards: (EventLoop) async -> Void = { _ in }
    ) async throws {
        let gate = Gate()
        let fixture = try await fixtureHolding(gate)
        let client = client(fixture, polling: window)
        let echoed = try await client.call("Echo", [1])
        XCTAssertEqual(echoed, [1])
        await assertReaches(Polling(active: false, awaited: 0), on: fixture.clientLoop, "an answer that came ends the polling")
        let held = Task { try await client.call("Held", [2], timeout: .seconds(30)) }
        try await during(fixture.clientLoop)
        gate.open()
        let answer = try await held.value
        XCTAssertEqual(answer, [2], "the answer is taken, whether the loop polled or slept when it came")
        await afterwards(fixture.clientLoop)
        await client.close()
        await fixture.close()
    }

    func testTheLoopPollsWhileAnAnswerIsAwaitedAndSleepsOnceItCame() async throws {
        try await whileACallIsHeld(polling: .seconds(600)) { loop in
            await assertReaches(Polling(active: true, awaited: 1), on: loop)
        } afterwards: { loop in
            await assertReaches(Polling(active: false, awaited: 0), on: loop, "long before its window of 600 s")
        }
    }

    func testPollingEndsWithItsWindowWhileTheAnswerIsStillAwaited() async throws {
        try await whileACallIsHeld(polling: .seconds(2)) { loop in
            await assertReaches(Polling(active: true, awaited: 1), on: loop)
            await assertReaches(Polling(active: false, awaited: 1), on: loop, "the loop sleeps again after 2 s")
        }
    }

    func testAClientWithNoPollingWindowLetsItsLoopSleepAtOnce() async throws {
        try await whileACallIsHeld(polling: .zero) { loop in
            await assertReaches(Polling(active: false, awaited: 1), on: loop)
            for _ in 0..<5 {
                try await Task.sleep(for: .milliseconds(20))
                let now = try await polling(loop)
                XCTAssertEqual(now, Polling(active: false, awaited: 1))
            }
        }
    }

    /// However a call ends (its deadline, its task cancelled, its connection lost, its client
    /// closed, a service that is not there), its answer is no longer awaited.
    func testEveryWayACallEndsStopsAwaitingItsAnswer() async throws {
        let gate = Gate()
        let fixture = try await fixtureHolding(gate)
        let client = client(fixture, polling: .seconds(600))
        let echoed = try await client.call("Echo", [1])
        XCTAssertEqual(echoed, [1], "connected before a call of 50 ms")
        await assertRPCError(.deadlineExceeded, containing: "no answer within 50 ms") { try await client.call("Held", [], timeout: .milliseconds(50)) }
        let cancelled = Task { try await client.call("Held", [], timeout: .seconds(30)) }
        await assertReaches(Polling(active: true, awaited: 1), on: fixture.clientLoop)
        cancelled.cancel()
        await assertRPCError(.cancelled, containing: "was cancelled") { try await cancelled.value }
        await assertReaches(Polling(active: false, awaited: 0), on: fixture.clientLoop)

        let closing = Task { try await client.call("Held", [], timeout: .seconds(30)) }
        await assertReaches(Polling(active: true, awaited: 1), on: fixture.clientLoop)
        await client.close()
        await assertRPCError(.cancelled, containing: "was closed") { try await closing.value }
        await assertReaches(Polling(active: false, awaited: 0), on: fixture.clientLoop)

        let other = fixture.tcpClient()
        let lost = Task { try await other.call("Held", [], timeout: .seconds(30)) }
        await assertReaches(Polling(active: false, awaited: 1), on: fixture.clientLoop, "the default window of 100 us passed")
        await fixture.server.shutdown(grace: .milliseconds(50))
        _ = try? await lost.value
        await assertReaches(Polling(active: false, awaited: 0), on: fixture.clientLoop, "the connection the server closed failed its call")

        let nowhere = RPCClient(loop: fixture.clientLoop, endpoint: .unix(path: fixture.socketPath + ".missing"), logger: Logger(label: "test-client"))
        await assertRPCError(.unavailable, containing: "missing") { try await nowhere.call("Echo", []) }
        let after = try await polling(fixture.clientLoop)
        XCTAssertEqual(after.awaited, 0)
        await nowhere.close()
        gate.open()
        await fixture.close()
    }

    /// A client released while its session offer is still unanswered (a service that accepts
    /// and never answers) leaves no answer awaited on its loop.
    func testAClientReleasedWithItsSessionOfferUnansweredLeavesNothingAwaited() async throws {
        let silent = try listeningSocket()
        defer { close(silent.fd) }
        let loop = try EventLoop()
        var configuration = RPCClient.Configuration(authenticator: Authenticator(key: .generate(), nodeID: 2))
        configuration.answerPolling = .seconds(600)
        var client: RPCClient? = RPCClient(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: silent.port), configuration: configuration, logger: Logger(label: "test-client"))
        await assertRPCError(.deadlineExceeded, containing: "no answer within 200 ms") { try await client!.call("Echo", [], timeout: .milliseconds(200)) }
        let offerPending = try await polling(loop)
        XCTAssertEqual(offerPending.awaited, 1, "the session offer awaits its answer (3 s)")
        client = nil
        await assertReaches(Polling(active: false, awaited: 0), on: loop, "the released client's offer is no longer awaited")
        await loop.shutdown()
    }

    /// The blocking client polls for its answer only within its window, then sleeps in recv:
    /// a thread waiting 400 ms for an answer, with a window of 1 ms, hardly uses the CPU.
    func testTheBlockingClientSleepsAfterItsWindowAndTakesTheLateAnswer() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Slow") { request in
            try await Task.sleep(for: .milliseconds(400))
            return request.body
        }
        try await fixture.listen()
        for window in [Duration.milliseconds(1), .seconds(5)] {
            let client = BlockingRPCClient(
                host: "127.0.0.1", port: fixture.port, authenticator: Authenticator(key: fixture.key, nodeID: 2), bindAddress: "127.0.0.1",
                answerPolling: window)
            XCTAssertEqual(try client.call("Echo", [1]), [1], "answered within the window of \(window)")
            let cpuBefore = threadCPUMs()
            XCTAssertEqual(try client.call("Slow", [2]), [2], "answered after 400 ms, with a window of \(window)")
            let cpuMs = threadCPUMs() - cpuBefore
            if window == .milliseconds(1) {
                XCTAssertLessThan(cpuMs, 100, "the thread slept after its window of 1 ms")
            } else {
                XCTAssertGreaterThan(cpuMs, 50, "the thread polled through the 400 ms, its window being 5 s")
            }
        }
        await fixture.close()
    }

    /// CPU time of the calling thread, in milliseconds.
    private func threadCPUMs() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return Double(now.tv_sec) * 1e3 + Double(now.tv_nsec) / 1e6
    }
}
