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
        authenticator.sign(&offer, to: fixture.service)
        raw.send(Frame.encode(offer.serialized()))
        let payload = try XCTUnwrap(raw.readPayload(), "no answer to Session")
        let answer = try payload.withUnsafeBytes { try Envelope.received($0, verifiedBy: authenticator, at: raw.local, refusalsUnsigned: false) }
        XCTAssertEqual(answer.envelope.status, .ok, answer.envelope.error)
        XCTAssertEqual(try Envelope(serialized: payload).auth?.scheme, .clusterHMACSHA256, "Session is answered with the cluster key")
        let serverRandom = try SessionResponse(wire: answer.envelope.body).serverRandom
        XCTAssertEqual(serverRandom.count, 32)
        return (raw, authenticator.sessionKeys(clientRandom: clientRandom, serverRandom: serverRandom, side: .client))
    }

    /// An `Echo` frame of a body large enough to be signed with `keys` (`SessionKeys.minimumBody`).
    private func sessionFrame(_ authenticator: Authenticator, _ keys: SessionKeys, to service: String, callID: UInt64, _ body: [UInt8]) -> [UInt8] {
        var request = Envelope(callID: callID, kind: .request, method: "Echo", body: large(body))
        authenticator.sign(&request, to: service, session: keys)
        XCTAssertEqual(request.auth?.scheme, .sessionChaCha20Poly1305)
        XCTAssertEqual(request.auth?.mac.count, 16)
        return Frame.encode(request.serialized())
    }

    /// `prefix`, then zeros up to `SessionKeys.minimumBody` bytes.
    private func large(_ prefix: [UInt8]) -> [UInt8] {
        prefix + [UInt8](repeating: 0, count: SessionKeys.minimumBody - prefix.count)
    }

    func testSmallBodiesAreSignedWithTheClusterKeyEvenWithASession() throws {
        let authenticator = Authenticator(key: .generate(), nodeID: 2)
        let keys = authenticator.sessionKeys(clientRandom: randomBytes(32), serverRandom: randomBytes(32), side: .client)
        var small = Envelope(callID: 1, kind: .request, method: "Echo", body: [UInt8](repeating: 1, count: SessionKeys.minimumBody - 1))
        authenticator.sign(&small, to: "10.0.0.2:7701", session: keys)
        XCTAssertEqual(small.auth?.scheme, .clusterHMACSHA256)
        XCTAssertEqual(small.auth?.mac.count, 32)
    }

    func testASessionAgreedByHandSignsBothWaysAndEachRefusalSaysWhy() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let authenticator = Authenticator(key: fixture.key, nodeID: 2)
        let (raw, keys) = try agreeByHand(fixture, authenticator)

        let frame = sessionFrame(authenticator, keys, to: fixture.service, callID: 2, [1, 2, 3])
        raw.send(frame)
        let payload = try XCTUnwrap(raw.readPayload())
        let answer = try payload.withUnsafeBytes { try Envelope.received($0, verifiedBy: authenticator, at: raw.local, session: keys, refusalsUnsigned: false) }
        XCTAssertEqual(answer.envelope.status, .ok, answer.envelope.error)
        XCTAssertEqual(answer.envelope.body, large([1, 2, 3]))
        XCTAssertEqual(try Envelope(serialized: payload).auth?.scheme, .sessionChaCha20Poly1305, "a large answer is signed with the session")

        raw.send(frame)
        let replay = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(replay.status, .unauthenticated)
        XCTAssertTrue(replay.error.contains("replayed envelope from node 2"), replay.error)

        var altered = sessionFrame(authenticator, keys, to: fixture.service, callID: 3, [4, 5, 6])
        altered[altered.count / 2] ^= 1  // inside the body, which fills most of the frame
        raw.send(altered)
        let forged = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(forged.status, .unauthenticated)
        XCTAssertTrue(forged.error.contains("bad MAC from node 2"), forged.error)

        var again = Envelope(callID: 4, kind: .request, method: "Session", body: SessionRequest(clientRandom: randomBytes(32)).wire())
        authenticator.sign(&again, to: fixture.service)
        raw.send(Frame.encode(again.serialized()))
        let second = try XCTUnwrap(raw.readEnvelope())
        XCTAssertEqual(second.status, .failedPrecondition)
        XCTAssertTrue(second.error.contains("a session was already agreed on this connection"), second.error)

        // Keys of one connection hold on no other: without a session, and with another one.
        let bare = try RawSocket(port: fixture.port)
        bare.send(sessionFrame(authenticator, keys, to: fixture.service, callID: 5, [7]))
        let sessionless = try XCTUnwrap(bare.readEnvelope())
        XCTAssertEqual(sessionless.status, .unauthenticated)
        XCTAssertTrue(sessionless.error.contains("no session was agreed on this connection"), sessionless.error)
        let (other, _) = try agreeByHand(fixture, authenticator)
        other.send(sessionFrame(authenticator, keys, to: fixture.service, callID: 6, [8]))
        let foreign = try XCTUnwrap(other.readEnvelope())
        XCTAssertEqual(foreign.status, .unauthenticated)
        XCTAssertTrue(foreign.error.contains("bad MAC from node 2"), foreign.error)

        // With the cluster key, the same connection is still served; a large answer comes with
        // the session's key, a small one with the cluster key.
        for body in [[9], large([9])] {
            var plain = Envelope(callID: 7, kind: .request, method: "Echo", body: body)
            authenticator.sign(&plain, to: fixture.service)
            raw.send(Frame.encode(plain.serialized()))
            let echoed = try XCTUnwrap(raw.readPayload())
            let checked = try echoed.withUnsafeBytes { try Envelope.received($0, verifiedBy: authenticator, at: raw.local, session: keys, refusalsUnsigned: false) }
            XCTAssertEqual(checked.envelope.body, body)
            XCTAssertEqual(try Envelope(serialized: echoed).auth?.scheme, body.count < SessionKeys.minimumBody ? .clusterHMACSHA256 : .sessionChaCha20Poly1305)
        }
        await fixture.close()
    }

    func testABadSessionOfferIsAnInvalidArgument() async throws {
        let fixture = try RPCFixture()
        try await fixture.listen()
        let raw = try RawSocket(port: fixture.port)
        var offer = Envelope(callID: 1, kind: .request, method: "Session", body: SessionRequest(clientRandom: [1, 2, 3]).wire())
        Authenticator(key: fixture.key, nodeID: 2).sign(&offer, to: fixture.service)
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
