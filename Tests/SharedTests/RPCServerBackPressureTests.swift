import Foundation
import Synchronization
import XCTest

@testable import Shared

/// A server stops taking a caller's frames when it must: once the answers it queued for a
/// caller who reads nothing pass the limit, once it refused the connection, once a frame error
/// left it waiting for a peer who reads nothing.
final class RPCServerBackPressureTests: XCTestCase {
    /// The frame of a signed request with no body.
    private func request(_ method: String, id: UInt64, _ fixture: RPCFixture) -> [UInt8] {
        Envelope(callID: id, kind: .request, method: method).frame(signedBy: Authenticator(key: fixture.key, nodeID: 2), to: fixture.service).withBytes { Array($0) }
    }

    /// Whether some connection of the fixture's server is in the state `holds` tells.
    private func someConnection(_ fixture: RPCFixture, _ holds: @escaping (Connection) -> Bool) async -> Bool {
        (try? await fixture.serverLoop.submit { fixture.serverLoop.openConnections.values.contains(where: holds) }) ?? false
    }

    func testCallsInOneReadStopOnceTheirUnreadAnswersPassTheLimitAndRunWhenTheCallerReads() async throws {
        let fixture = try RPCFixture()
        let ran = Atomic(0)
        fixture.server.registerImmediate("Big") { _ in
            ran.add(1, ordering: .relaxed)
            return [UInt8](repeating: 3, count: 1 << 20)
        }
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        // 300 calls in one send (45 KB), whose answers would be 300 MiB.
        raw.send((1...300).flatMap { request("Big", id: UInt64($0), fixture) })
        let paused = await waitUntil { await someConnection(fixture) { $0.readingPaused } }
        XCTAssertTrue(paused, "the server stopped reading")
        let limit = Connection.queuedOutputLimit >> 20
        XCTAssertLessThan(ran.load(ordering: .relaxed), limit + 32, "calls ran after the answers queued passed \(limit) MiB")
        // Read, the calls left over from the read run after all.
        let answers = (1...300).compactMap { _ in raw.readEnvelope() }
        XCTAssertEqual(answers.map(\.callID), (1...300).map { UInt64($0) }, "every call answered, in order")
        XCTAssertTrue(answers.allSatisfy { $0.status == .ok && $0.body.count == 1 << 20 })
        XCTAssertEqual(ran.load(ordering: .relaxed), 300)
        await fixture.close()
    }

    func testCallsThatCameWithARefusedSignInDoNotRun() async throws {
        let fixture = try RPCFixture { $0.maxConnectionsPerAddress = 1 }
        let recorded = Atomic(0)
        fixture.server.registerImmediate("Record") { _ in
            recorded.add(1, ordering: .relaxed)
            return []
        }
        try await fixture.listen()
        let first = try await fixture.tcpClient().call("Echo", [1])
        XCTAssertEqual(first, [1], "the one connection this address may have")
        let raw = try RawSocket(port: fixture.port)
        // Its first signed call is refused (the address has its connection); the next one, in
        // the same read, must not run.
        raw.send(request("Echo", id: 1, fixture) + request("Record", id: 2, fixture))
        let refusal = try XCTUnwrap(raw.readEnvelope(), "the refusal")
        XCTAssertEqual(refusal.callID, 0)
        XCTAssertEqual(refusal.status, .resourceExhausted, refusal.error)
        XCTAssertTrue(raw.isClosedByPeer(), "and nothing else before the end")
        XCTAssertEqual(recorded.load(ordering: .relaxed), 0, "a call of a refused connection ran")
        await fixture.close()
    }

    func testAConnectionClosingAfterAFrameErrorGoesWhenItsPeerReadsNothing() async throws {
        let fixture = try RPCFixture { $0.stalledTimeout = .milliseconds(500) }
        fixture.server.registerImmediate("Big") { _ in [UInt8](repeating: 5, count: 15 << 20) }
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        raw.send(request("Big", id: 1, fixture))
        XCTAssertNotNil(raw.read(4), "the answer began")
        raw.send([0xFF, 0xFF, 0xFF, 0xFF])
        let closing = await waitUntil { await someConnection(fixture) { $0.isClosingAfterFlush } }
        XCTAssertTrue(closing, "the frame error made the connection close once its answers are written")
        // The peer reads nothing more: after the stalled timeout, the connection goes anyway.
        let gone = await waitUntil { (try? await fixture.serverLoop.submit { fixture.serverLoop.openConnections.isEmpty }) ?? false }
        XCTAssertTrue(gone, "the connection still waits for a peer that reads nothing")
        await fixture.close()
    }
}
