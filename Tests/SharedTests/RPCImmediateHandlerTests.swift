import Foundation
import Synchronization
import XCTest

@testable import Shared

/// Handlers registered with `registerImmediate`: answered on the loop thread as each request
/// arrives, without a task, over TCP (signed) and a Unix socket alike.
final class RPCImmediateHandlerTests: XCTestCase {
    func testAnImmediateHandlerAnswersEveryCallOnTheLoopThread() async throws {
        let fixture = try RPCFixture()
        let loop = fixture.serverLoop
        fixture.server.registerImmediate("Where") { request in [loop.inLoop ? 1 : 0] + request.body }
        try await fixture.listen()
        for client in [fixture.tcpClient(), fixture.unixClient()] {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<300 {
                    group.addTask {
                        let body = Array("call \(index)".utf8)
                        let answer = try await client.call("Where", body)
                        XCTAssertEqual(answer, [1] + body, "answered on the loop thread, each call with its own body")
                    }
                }
                try await group.waitForAll()
            }
        }
        await fixture.close()
    }

    func testAnImmediateHandlerTakesAndReturnsTypedMessages() async throws {
        let fixture = try RPCFixture()
        fixture.server.registerImmediate("Ping") { (request: PingRequest, rpc) in
            guard case let .remote(_, node) = rpc.caller else { return PingResponse(payload: request.payload, nodeID: 0) }
            return PingResponse(payload: request.payload, nodeID: node)
        }
        try await fixture.listen()
        let answer = try await fixture.tcpClient().call("Ping", PingRequest(payload: [1, 2, 3]), returning: PingResponse.self)
        XCTAssertEqual(answer, PingResponse(payload: [1, 2, 3], nodeID: 2), "the caller's node id from its signature")
        await assertRPCError(.invalidArgument, containing: "malformed omx.PingRequest (3 bytes)") {
            try await fixture.unixClient().call("Ping", [0xFF, 0xFF, 0xFF])
        }
        await fixture.close()
    }

    func testAnImmediateHandlersErrorsReachTheCaller() async throws {
        let fixture = try RPCFixture()
        fixture.server.registerImmediate("Find") { _ in throw RPCError(.notFound, "no job 2.17") }
        fixture.server.registerImmediate("Crash") { _ in throw ConfigError("disk on fire") }
        try await fixture.listen()
        for client in [fixture.tcpClient(), fixture.unixClient()] {
            await assertRPCError(.notFound, containing: "no job 2.17") { try await client.call("Find", []) }
            await assertRPCError(.internal, containing: "Crash: disk on fire") { try await client.call("Crash", []) }
            let echoed = try await client.call("Echo", [9])
            XCTAssertEqual(echoed, [9], "the connection serves on")
        }
        await fixture.close()
    }

    /// Immediate handlers are answered straight from the request's parsed fields: the checks
    /// every call passes still hold for them (a response is no request; a draining server
    /// refuses), and their calls are counted in the metrics like any other.
    func testImmediateCallsAreCheckedAndCountedAsEveryCall() async throws {
        let metrics = MetricsRegistry()
        let fixture = try RPCFixture { $0.metrics = metrics }
        let gate = Gate()
        let holding = Mutex(false)
        fixture.server.registerImmediate("Where") { request in request.body }
        fixture.server.registerImmediate("Find") { _ in throw RPCError(.notFound, "no job 2.17") }
        fixture.server.register("Hold") { _ in
            holding.withLock { $0 = true }
            await gate.passed()
            return []
        }
        try await fixture.listen()
        let tcp = fixture.tcpClient()
        for client in [tcp, fixture.unixClient()] {
            for index in 0..<3 {
                let answer = try await client.call("Where", [UInt8(index)])
                XCTAssertEqual(answer, [UInt8(index)])
            }
            await assertRPCError(.notFound, containing: "no job 2.17") { try await client.call("Find", []) }
        }
        await assertRPCError(.unimplemented, containing: "no method 'Nowhere'") { try await tcp.call("Nowhere", []) }

        let raw = try RawSocket(port: fixture.port)
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        raw.send(Envelope(callID: 7, kind: .response, method: "Where", body: [1]).frame(signedBy: signer, to: fixture.service).withBytes { Array($0) })
        let refusal = try XCTUnwrap(raw.readEnvelope(), "a response sent as a call is answered")
        XCTAssertEqual(refusal.callID, 7)
        XCTAssertEqual(refusal.status, .invalidArgument)
        XCTAssertTrue(refusal.error.contains("expected a request, got a response to call 7"), refusal.error)

        let counted = { (name: String, labels: [String]) -> Metric? in
            metrics.snapshot().first { $0.name == name && $0.labels.flatMap { [$0.0, $0.1] } == labels }
        }
        XCTAssertEqual(counted("omx_rpc_calls_total", ["method", "Where", "status", "OK"])?.value, 6)
        XCTAssertEqual(counted("omx_rpc_calls_total", ["method", "Where", "status", "INVALID_ARGUMENT"])?.value, 1)
        XCTAssertEqual(counted("omx_rpc_calls_total", ["method", "Find", "status", "NOT_FOUND"])?.value, 2)
        XCTAssertEqual(counted("omx_rpc_call_seconds", ["method", "Where"])?.count, 7, "each call's duration observed")
        XCTAssertEqual(counted("omx_rpc_call_seconds", ["method", "Find"])?.count, 2, "refusals' durations too")
        XCTAssertEqual(counted("omx_rpc_calls_total", ["method", "(unknown)", "status", "UNIMPLEMENTED"])?.value, 1, "unknown methods counted together")
        XCTAssertEqual(counted("omx_rpc_call_seconds", ["method", "(unknown)"])?.count, 1)
        XCTAssertEqual(counted("omx_rpc_calls_total", ["method", "Hold", "status", "OK"])?.value, 0, "a registered method's series exist from its registration")

        // A call held in flight keeps the draining server's connections open meanwhile.
        let held = Task { try await tcp.call("Hold", []) }
        let reached = await waitUntil { holding.withLock { $0 } }
        XCTAssertTrue(reached, "the Hold call reached its handler")
        let draining = Task { await fixture.server.shutdown(grace: .seconds(5)) }
        let refused = await waitUntil {
            do {
                _ = try await tcp.call("Where", [1])
                return false
            } catch let error as RPCError {
                return error.status == .unavailable && error.message.contains("test server is shutting down")
            } catch {
                return false
            }
        }
        XCTAssertTrue(refused, "an immediate call to a draining server is refused with UNAVAILABLE")
        gate.open()
        _ = try await held.value
        await draining.value
        await fixture.close()
    }
}
