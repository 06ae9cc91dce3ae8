import Foundation
import Logging
import Synchronization
import XCTest

@testable import Shared

final class RPCRuntimeTests: XCTestCase {
    func testManyCallsInFlightOnOneConnectionEachGetTheirOwnAnswer() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("SlowEcho") { request in
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...20)))
            return request.body
        }
        try await fixture.listen()
        for client in [fixture.tcpClient(), fixture.unixClient()] {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let body = Array("call \(index)".utf8)
                        let answer = try await client.call("SlowEcho", body)
                        XCTAssertEqual(answer, body)
                    }
                }
                try await group.waitForAll()
            }
        }
        await fixture.close()
    }

    func testACallerThatSendsWithoutReadingIsStoppedNotBufferedAndThenAnswered() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        let body = [UInt8](repeating: 7, count: 1 << 20)
        // 1 MiB echoes, never reading the answers, until a second passes without progress.
        let (sentFrames, sentBytes) = raw.sendWithoutReading(limit: 300 << 20) { id in
            Envelope(callID: UInt64(id), kind: .request, method: "Echo", body: body).frame(signedBy: signer, to: fixture.service)
        }
        XCTAssertLessThan(sentBytes, 200 << 20, "the server stopped reading once \(Connection.queuedOutputLimit >> 20) MiB of answers waited")
        XCTAssertGreaterThan(sentFrames, Connection.queuedOutputLimit >> 20, "it read until then")
        // Once the caller reads, every whole request is answered, in order.
        var answered = 0
        while answered < sentFrames, let envelope = raw.readEnvelope() {
            XCTAssertEqual(envelope.callID, UInt64(answered + 1))
            XCTAssertEqual(envelope.body.count, 1 << 20)
            answered += 1
        }
        XCTAssertEqual(answered, sentFrames)
        await fixture.close()
    }

    func testBodiesLargerThanTheSocketBufferArriveWholeAndInOrder() async throws {
        // Frames of several MiB outgrow what one writev hands the kernel: the rest is queued
        // from the right byte on, behind and ahead of the small frames around it.
        let fixture = try RPCFixture()
        try await fixture.listen()
        for client in [fixture.tcpClient(), fixture.unixClient()] {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let size = index % 3 == 0 ? 3 << 20 : 100 + index
                        let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
                        let answer = try await client.call("Echo", body, timeout: .seconds(30))
                        XCTAssertTrue(answer == body, "call \(index) (\(size) bytes) came back whole")
                    }
                }
                try await group.waitForAll()
            }
        }
        await fixture.close()
    }

    func testASlowHandlerDoesNotHoldUpOtherCalls() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Sleep") { _ in
            try await Task.sleep(for: .seconds(2))
            return []
        }
        try await fixture.listen()
        let client = fixture.tcpClient()
        let slow = Task { try await client.call("Sleep", []) }
        try await Task.sleep(for: .milliseconds(50))
        let start = monotonicNs()
        _ = try await client.call("Echo", [1])
        XCTAssertLessThan(monotonicNs() - start, 1_000_000_000, "Echo waited for Sleep")
        _ = try await slow.value
        await fixture.close()
    }

    func testACallPastItsDeadlineFailsWithDeadlineExceeded() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Sleep") { request in
            XCTAssertEqual(request.deadlineMs, 200, "the callee learns the caller's deadline")
            try await Task.sleep(for: .seconds(3))
            return []
        }
        try await fixture.listen()
        let client = fixture.tcpClient()
        let start = monotonicNs()
        await assertRPCError(.deadlineExceeded, containing: "Sleep to 127.0.0.1:\(fixture.port) got no answer within 200 ms") {
            try await client.call("Sleep", [], timeout: .milliseconds(200))
        }
        XCTAssertLessThan(monotonicNs() - start, 2_000_000_000)
        do {
            _ = try await client.call("Sleep", [], timeout: .milliseconds(200))
            XCTFail("no answer in time")
        } catch let error as RPCError {
            XCTAssertFalse(error.neverSent, "a call past its deadline was sent and may have been made: \(error)")
        }
        await fixture.close()
    }

    func testAnOversizeFrameIsRefusedWithAnErrorAndTheConnectionClosed() async throws {
        let fixture = try RPCFixture(maxFrameSize: 1024)
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        raw.send([0, 0, 0x10, 0])  // announces 4096 bytes
        let refusal = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(refusal.status, .resourceExhausted)
        XCTAssertEqual(refusal.error, "test server: frame of 4096 bytes exceeds the maximum frame size of 1024 bytes; closing the connection")
        XCTAssertTrue(raw.isClosedByPeer())

        let client = fixture.tcpClient()
        await assertRPCError(.resourceExhausted, containing: "exceeds the maximum frame size of 1024 bytes") {
            try await client.call("Echo", [UInt8](repeating: 1, count: 4096))
        }
        let again = try await client.call("Echo", [1, 2])
        XCTAssertEqual(again, [1, 2], "a new connection works after the refusal")
        await fixture.close()
    }

    func testRandomBytesOnOneConnectionDoNotDisturbCallsOnAnother() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let client = fixture.tcpClient()
        let garbage = Task.detached {
            for _ in 0..<20 {
                let raw = try RawSocket(port: fixture.port)
                raw.send((0..<65_536).map { _ in UInt8.random(in: 0...255) })
            }
        }
        for index in 0..<200 {
            let answer = try await client.call("Echo", [UInt8(index % 256)])
            XCTAssertEqual(answer, [UInt8(index % 256)])
        }
        try await garbage.value
        let last = try await client.call("Echo", [42])
        XCTAssertEqual(last, [42])
        await fixture.close()
    }

    func testAValidFrameWithAGarbageBodyIsAnsweredWithInvalidArgumentAndTheConnectionStays() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        raw.send(Frame.encode([0xff, 0xff, 0xff, 0xff, 0x0f]))
        let answer = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(answer.status, .invalidArgument)
        XCTAssertTrue(answer.error.hasPrefix("malformed envelope (5 bytes) from 127.0.0.1"), answer.error)

        var request = Envelope(callID: 9, kind: .request, method: "Echo", body: [5])
        Authenticator(key: fixture.key, nodeID: 2).sign(&request, to: fixture.service)
        raw.send(Frame.encode(request.serialized()))
        let echo = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(echo.callID, 9)
        XCTAssertEqual(echo.body, [5])
        await fixture.close()
    }

    func testAnUnknownMethodIsUnimplementedAndListsTheKnownOnes() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        await assertRPCError(.unimplemented, containing: "test server has no method 'Nope' (it has: Echo)") {
            try await fixture.unixClient().call("Nope", [])
        }
        await fixture.close()
    }

    func testAHandlersErrorStatusReachesTheCaller() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Find") { _ in throw RPCError(.notFound, "no job 2.17") }
        fixture.server.register("Crash") { _ in throw ConfigError("disk on fire") }
        try await fixture.listen()
        let client = fixture.tcpClient()
        await assertRPCError(.notFound, containing: "no job 2.17") { try await client.call("Find", []) }
        await assertRPCError(.internal, containing: "Crash: disk on fire") { try await client.call("Crash", []) }
        await fixture.close()
    }

    func testCallsFailFastWhenNobodyListensNamingTheEndpoint() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let port = fixture.port
        await fixture.server.shutdown(grace: .seconds(1))
        let client = fixture.tcpClient()
        await assertRPCError(.unavailable, containing: "connect 127.0.0.1:\(port): ECONNREFUSED") {
            try await client.call("Echo", [])
        }
        await assertRPCError(.unavailable, containing: "next attempt in") { try await client.call("Echo", []) }
        do {
            _ = try await client.call("Echo", [])
            XCTFail("nobody listens")
        } catch let error as RPCError {
            XCTAssertTrue(error.neverSent, "a call that found no connection was never sent: \(error)")
        }
        await fixture.close()
    }

    func testTheClientReconnectsAfterTheServerRestarts() async throws {
        let key = ClusterKey.generate()
        let first = try RPCFixture(key: key)
        try await first.listen()
        let port = first.port
        let client = first.tcpClient()
        let before = try await client.call("Echo", [1])
        XCTAssertEqual(before, [1])
        await first.server.shutdown(grace: .seconds(1))
        await assertRPCError(.unavailable, containing: "127.0.0.1:\(port)") { try await client.call("Echo", [2]) }

        let second = try RPCFixture(key: key)
        try await second.server.listen(on: .tcp(host: "127.0.0.1", port: port))
        var answer: [UInt8]?
        for _ in 0..<100 where answer == nil {
            answer = try? await client.call("Echo", [3])
            if answer == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        XCTAssertEqual(answer, [3], "the client connected again within 5 s")
        await first.close()
        await second.close()
    }

    func testShutdownLetsCallsInFlightFinishAndRefusesNewConnections() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Work") { _ in
            try await Task.sleep(for: .milliseconds(300))
            return [7]
        }
        try await fixture.listen()
        let client = fixture.tcpClient()
        _ = try await client.call("Echo", [])
        let inFlight = Task { try await client.call("Work", []) }
        try await Task.sleep(for: .milliseconds(50))
        await fixture.server.shutdown(grace: .seconds(5))
        let finished = try await inFlight.value
        XCTAssertEqual(finished, [7], "the call in flight was answered before the connection closed")
        XCTAssertThrowsError(try RawSocket(port: fixture.port), "the listener is closed")
        await fixture.close()
    }

    func testOneConnectionMayLeaveOnlySoManyCallsUnanswered() async throws {
        let logs = CapturedLogs()
        let fixture = try RPCFixture(serverLogger: logs.logger("test-server"))
        let gate = Gate()
        fixture.server.register("Hold") { _ in
            await gate.passed()
            return []
        }
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        let signer = Authenticator(key: fixture.key, nodeID: 2)
        let limit = RPCServer.maxCallsInFlightPerConnection
        let frames = (1...(limit + 10)).flatMap { id in
            Envelope(callID: UInt64(id), kind: .request, method: "Hold").frame(signedBy: signer, to: fixture.service).withBytes { Array($0) }
        }
        raw.send(frames)
        // The calls past the limit are refused at once, naming it; the others wait their turn.
        for id in (limit + 1)...(limit + 10) {
            let refusal = raw.readEnvelope()
            XCTAssertEqual(refusal?.callID, UInt64(id))
            XCTAssertEqual(refusal?.status, .resourceExhausted)
            XCTAssertTrue(refusal?.error.contains("\(limit) calls of this connection are still unanswered") == true, refusal?.error ?? "no answer")
        }
        let logged = logs.all.filter { $0.contains("refused Hold from 127.0.0.1: \(limit) calls of this connection are still unanswered") }
        XCTAssertEqual(logged.count, 1, "one line for the 10 refusals: \(logs.all)")
        gate.open()
        var answered = 0
        while answered < limit, let answer = raw.readEnvelope(), answer.status == .ok { answered += 1 }
        XCTAssertEqual(answered, limit)
        await fixture.close()
    }

    func testShutdownReturnsOnlyOnceEveryAnswerIsWritten() async throws {
        let fixture = try RPCFixture()
        let (answering, answered) = AsyncStream<Void>.makeStream()
        fixture.server.register("Big") { _ in
            answered.yield()
            return [UInt8](repeating: 5, count: 15 << 20)
        }
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        raw.send(Envelope(callID: 1, kind: .request, method: "Big").frame(signedBy: Authenticator(key: fixture.key, nodeID: 2), to: fixture.service).withBytes { Array($0) })
        let reader = Task.detached { raw.readEnvelope() }
        for await _ in answering { break }
        // What a service does on SIGTERM: drain, then stop the loop, which closes every handle.
        await fixture.server.shutdown(grace: .seconds(10))
        await fixture.serverLoop.shutdown()
        let answer = await reader.value
        XCTAssertEqual(answer?.body.count, 15 << 20, "the 15 MiB answer was written whole before the loop stopped")
        await fixture.close()
    }

    func testAConnectionClosingAfterAFrameErrorStillWritesItsAnswersWhenTheServerDrains() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Big") { _ in [UInt8](repeating: 5, count: 15 << 20) }
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        raw.send(Envelope(callID: 1, kind: .request, method: "Big").frame(signedBy: Authenticator(key: fixture.key, nodeID: 2), to: fixture.service).withBytes { Array($0) })
        // The answer is on its way: the rest of it waits in the server's write queue.
        let header = try XCTUnwrap(raw.read(4), "the answer began")
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        raw.send([0xFF, 0xFF, 0xFF, 0xFF])
        let closing = await waitUntil {
            (try? await fixture.serverLoop.submit { fixture.serverLoop.openConnections.values.contains { $0.isClosingAfterFlush } }) ?? false
        }
        XCTAssertTrue(closing, "the frame error made the connection close once its answers are written")
        let reader = Task.detached { (raw.read(length).map { try? Envelope(serialized: $0) }, raw.readEnvelope()) }
        // The drain closes every connection after its answers too: this one is closing already.
        await fixture.server.shutdown(grace: .seconds(10))
        let (answer, refusal) = await reader.value
        XCTAssertEqual(answer??.body.count, 15 << 20, "the answer was written whole")
        XCTAssertEqual(refusal?.status, .resourceExhausted, "then the refusal of the frame")
        await fixture.close()
    }

    func testCancellingTheCallingTaskCancelsTheCall() async throws {
        let fixture = try RPCFixture()
        fixture.server.register("Sleep") { _ in
            try await Task.sleep(for: .seconds(5))
            return []
        }
        try await fixture.listen()
        let client = fixture.tcpClient()
        let call = Task { try await client.call("Sleep", []) }
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        await assertRPCError(.cancelled, containing: "Sleep to 127.0.0.1") { try await call.value }
        await fixture.close()
    }

    func testAClientReleasedWithoutCloseClosesItsConnection() async throws {
        let loop = try EventLoop()
        let (listener, port) = try listeningSocket()
        defer { close(listener) }
        var client: RPCClient? = RPCClient(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: port), logger: Logger(label: "test-client"))
        let call = Task { [client] in try await client!.call("Unanswered", [], timeout: .milliseconds(300)) }
        let peer = RawSocket(acceptedBy: listener)
        XCTAssertEqual(peer.readEnvelope()?.method, "Unanswered", "the client is connected")
        await assertRPCError(.deadlineExceeded, containing: "Unanswered") { try await call.value }
        client = nil
        XCTAssertTrue(peer.isClosedByPeer(), "the connection went with the last reference to its client")
        await loop.shutdown()
    }
}
