import Foundation
import Logging
import Synchronization
import XCTest

@testable import Shared

/// The async client where its calls could otherwise hang: an answer it cannot read, a task
/// cancelled before its call reached the loop, a loop stopping under its calls, a timeout of ages.
final class RPCClientEdgeTests: XCTestCase {
    func testAnAnswerLargerThanTheClientsMaximumFrameFailsTheCallAndTheNextCallReconnects() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        var configuration = RPCClient.Configuration(authenticator: Authenticator(key: fixture.key, nodeID: 2))
        configuration.maxFrameSize = 1024
        let client = RPCClient(
            loop: fixture.clientLoop, endpoint: .tcp(host: "127.0.0.1", port: fixture.port), configuration: configuration, logger: Logger(label: "test-client"))
        // Not its deadline: the answer's header already says it cannot be read.
        await assertRPCError(.dataLoss, containing: "Echo: bad response from 127.0.0.1:\(fixture.port): frame of") {
            try await client.call("Echo", [UInt8](repeating: 7, count: 4096), timeout: .seconds(60))
        }
        let again = try await client.call("Echo", [1, 2], timeout: .seconds(10))
        XCTAssertEqual(again, [1, 2], "the next call took a new connection")
        await client.close()
        await fixture.close()
    }

    func testACallByATaskCancelledBeforeItReachedTheLoopFailsAtOnceWithCancelled() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Sleep") { _ in
            try await Task.sleep(for: .seconds(30))
            return []
        }
        try await fixture.listen()
        let client = fixture.tcpClient()
        // The task is cancelled already: the cancellation handler runs before the call starts.
        let call = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.call("Sleep", [], timeout: .seconds(5))
        }
        await assertRPCError(.cancelled, containing: "Sleep to 127.0.0.1:\(fixture.port) was cancelled") { try await call.value }
        await fixture.close()
    }

    func testALoopStoppingUnderCallsInFlightFailsThemWhereverTheirCallersRun() async throws {
        let loop = try EventLoop()
        let (listener, port) = try listeningSocket()
        defer { close(listener) }
        let client = RPCClient(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: port), logger: Logger(label: "test-client"))
        let outcomes = Mutex<[String: Result<[UInt8], Error>]>([:])
        // One caller on Swift's pool, one on the loop itself (a service's own code).
        let callers = [
            Task {
                let outcome = await Result { try await client.call("FromThePool", [], timeout: .seconds(60)) }
                outcomes.withLock { $0["pool"] = outcome }
            },
            Task(executorPreference: loop) {
                let outcome = await Result { try await client.call("FromTheLoop", [], timeout: .seconds(60)) }
                outcomes.withLock { $0["loop"] = outcome }
            },
        ]
        let peer = RawSocket(acceptedBy: listener)
        XCTAssertEqual(Set([peer.readEnvelope()?.method, peer.readEnvelope()?.method]), ["FromThePool", "FromTheLoop"], "both calls are in flight")
        await loop.shutdown()
        let ended = await waitUntil(seconds: 10) { outcomes.withLock { $0.count } == 2 }
        XCTAssertTrue(ended, "of the callers on the pool and on the loop, only \(outcomes.withLock { Array($0.keys) }) heard the loop stop")
        for (caller, outcome) in outcomes.withLock({ $0 }) {
            XCTAssertThrowsError(try outcome.get(), caller) { error in
                XCTAssertEqual((error as? RPCError)?.status, .unavailable, "\(caller): \(error)")
                XCTAssertTrue("\(error)".contains("event loop stopped"), "\(caller): \(error)")
            }
        }
        if !ended { for caller in callers { caller.cancel() } }
    }

    func testACallWithATimeoutOfAgesIsAnswered() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let ages = Duration.seconds(Int64.max)
        let answer = try await fixture.tcpClient().call("Echo", [4], timeout: ages)
        XCTAssertEqual(answer, [4])
        let blocking = BlockingRPCClient(host: "127.0.0.1", port: fixture.port, authenticator: Authenticator(key: fixture.key, nodeID: 2), bindAddress: nil)
        XCTAssertEqual(try blocking.call("Echo", [5], timeout: ages), [5])
        await fixture.close()
    }
}

extension Result where Failure == Error {
    /// The outcome of an async `body`.
    init(_ body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
