import Foundation
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
}
