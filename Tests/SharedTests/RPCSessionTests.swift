import Foundation
import XCTest

@testable import Shared

/// Sessions (proto/README.md, "Sessions"): per-connection keys agreed with a `Session` call,
/// done by hand over a raw socket as a client in another language would, and by both clients.
final class RPCSessionTests: XCTestCase {
    /// A raw connection that agreed on a session by hand, and its client-side keys.
    private func agreeByHand(_ fixture: RPCFixture, _ authenticator: Authenticator) throws -> (RawSocket, SessionKeys) {
        let raw = try RawSocket(port: fixture.port)
        let clientRandom = randomBytes(32)
        var offer = Envelope(callID: 1, kind: .request, method: "Session", body: SessionRequest(clientRandom: clientRandom).wire())
        authenticator.sign(&offer)
        raw.send(Frame.encode(offer.serialized()))
        let payload = try XCTUnwrap(raw.readPayload(), "no answer to Session")
        let answer = try payload.withUnsafeBytes { try Envelope.received($0, verifiedBy: authenticator, refusalsUnsigned: false) }
        XCTAssertEqual(answer.envelope.status, .ok, answer.envelope.error)
        XCTAssertFalse(answer.bySession, "Session is answered with the cluster key, as it was asked")
        let serverRandom = try SessionResponse(wire: answer.envelope.body).serverRandom
        XCTAssertEqual(serverRandom.count, 32)
        return (raw, authenticator.sessionKeys(clientRandom: clientRandom, serverRandom: serverRandom, side: .client))
    }

    /// A frame of `method` with `body`, signed with `keys`.
    private func sessionFrame(_ authenticator: Authenticator, _ keys: SessionKeys, callID: UInt64, _ body: [UInt8]) -> [UInt8] {
        var request = Envelope(callID: callID, kind: .request, method: "Echo", body: body)
        authenticator.sign(&request, session: keys)
        XCTAssertEqual(request.auth?.scheme, .sessionChaCha20Poly1305)
        XCTAssertEqual(request.auth?.mac.count, 16)
        return Frame.encode(request.serialized())
    }

    func testASessionAgreedByHandSignsBothWaysAndEachRefusalSaysWhy() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let authenticator = Authenticator(key: fixture.key, nodeID: 2)
        let (raw, keys) = try agreeByHand(fixture, authenticator)

        let frame = sessionFrame(authenticator, keys, callID: 2, [1, 2, 3])
        raw.send(frame)
        let payload = try XCTUnwrap(raw.readPayload())
        let answer = try payload.withUnsafeBytes { try Envelope.received($0, verifiedBy: authenticator, session: keys, refusalsUnsigned: false) }
        XCTAssertEqual(answer.envelope.status, .ok, answer.envelope.error)
        XCTAssertEqual(answer.envelope.body, [1, 2, 3])
        XCTAssertTrue(answer.bySession, "a call signed with the session is answered with it")

        raw.send(frame)
        let replay = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(replay.status, .unauthenticated)
        XCTAssertTrue(replay.error.contains("replayed envelope from node 2"), replay.error)

        var altered = sessionFrame(authenticator, keys, callID: 3, [4, 5, 6])
        altered[altered.count - 1] ^= 1  // inside the body's bytes
        raw.send(altered)
        let forged = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(forged.status, .unauthenticated)
        XCTAssertTrue(forged.error.contains("bad MAC from node 2"), forged.error)

        var again = Envelope(callID: 4, kind: .request, method: "Session", body: SessionRequest(clientRandom: randomBytes(32)).wire())
        authenticator.sign(&again)
        raw.send(Frame.encode(again.serialized()))
        let second = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(second.status, .failedPrecondition)
        XCTAssertTrue(second.error.contains("a session was already agreed on this connection"), second.error)

        // Keys of one connection hold on no other: without a session, and with another one.
        let bare = try RawSocket(port: fixture.port)
        bare.send(sessionFrame(authenticator, keys, callID: 5, [7]))
        let sessionless = try XCTUnwrap(bare.readEnvelope())
        XCTAssertEqual(sessionless.status, .unauthenticated)
        XCTAssertTrue(sessionless.error.contains("no session was agreed on this connection"), sessionless.error)
        let (other, _) = try agreeByHand(fixture, authenticator)
        other.send(sessionFrame(authenticator, keys, callID: 6, [8]))
        let foreign = try XCTUnwrap(other.readEnvelope())
        XCTAssertEqual(foreign.status, .unauthenticated)
        XCTAssertTrue(foreign.error.contains("bad MAC from node 2"), foreign.error)

        // With the cluster key, the same connection is still served.
        var plain = Envelope(callID: 7, kind: .request, method: "Echo", body: [9])
        authenticator.sign(&plain)
        raw.send(Frame.encode(plain.serialized()))
        XCTAssertEqual(raw.readEnvelope()?.body, [9])
        await fixture.close()
    }

    func testABadSessionOfferIsAnInvalidArgument() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        var offer = Envelope(callID: 1, kind: .request, method: "Session", body: SessionRequest(clientRandom: [1, 2, 3]).wire())
        Authenticator(key: fixture.key, nodeID: 2).sign(&offer)
        raw.send(Frame.encode(offer.serialized()))
        let answer = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(answer.status, .invalidArgument)
        XCTAssertTrue(answer.error.contains("Session needs a SessionRequest with 32 random bytes"), answer.error)
        await fixture.close()
    }

    func testTheEventLoopClientAgreesOnASessionAndItsCallsKeepWorking() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let client = fixture.tcpClient()
        let small = try await client.call("Echo", [1])
        XCTAssertEqual(small, [1])
        let large = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for _ in 0..<3 {
            let answer = try await client.call("Echo", large)
            XCTAssertTrue(answer == large, "1 MiB comes back whole")
        }
        let agreed = await client.sessionAgreed()
        XCTAssertTrue(agreed, "the client's connection agreed on a session")
        await fixture.close()
    }

    func testTheBlockingClientAgreesOnASessionOnEachConnection() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let client = BlockingRPCClient(host: "127.0.0.1", port: fixture.port, authenticator: Authenticator(key: fixture.key, nodeID: 2), bindAddress: "127.0.0.1")
        let large = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        XCTAssertTrue(try client.call("Echo", large) == large)
        XCTAssertEqual(try client.call("Echo", [5]), [5])
        XCTAssertEqual(client.idleConnections.all, 1)
        XCTAssertEqual(client.idleConnections.withSession, 1)
        await fixture.close()
    }
}
