import XCTest

@testable import Shared

final class EnvelopeTests: XCTestCase {
    func testAnEnvelopeSurvivesTheRoundTrip() throws {
        let envelope = Envelope(
            callID: 42, kind: .response, method: "Discovery.Members", body: [1, 2, 3], status: .notFound,
            error: "no such node", deadlineMs: 1500,
            auth: EnvelopeAuth(nodeID: 3, timestampMs: 1_700_000_000_000, nonce: Array(0..<16), mac: Array(repeating: 7, count: 32)))
        XCTAssertEqual(try Envelope(serialized: envelope.serialized()), envelope)
    }

    func testAFramePackedInPlaceIsTheLengthPrefixedEnvelope() throws {
        for body in [[UInt8](), [1, 2, 3], [UInt8](repeating: 9, count: 70_000)] {
            let envelope = Envelope(callID: 7, kind: .request, method: "FSGateway.Write", body: body, deadlineMs: 100)
            let frame = envelope.frame()
            XCTAssertEqual(frame.withBytes { Array($0) }, Frame.encode(envelope.serialized()))
        }
    }

    func testAnEnvelopeParsedWhereItLiesEqualsTheOneParsedFromACopy() throws {
        // Bodies larger than the stack scratch area make protobuf-c fall back to malloc.
        for body in [[UInt8](), [5], [UInt8](repeating: 3, count: 4_000), [UInt8](repeating: 4, count: 100_000)] {
            let envelope = Envelope(
                callID: 9, kind: .response, method: "FSGateway.Read", body: body, status: .ok, error: "",
                auth: EnvelopeAuth(nodeID: 2, timestampMs: 1, nonce: Array(0..<16), mac: Array(repeating: 1, count: 32)))
            let bytes = envelope.serialized()
            XCTAssertEqual(try bytes.withUnsafeBytes { try Envelope(serialized: $0) }, envelope)
        }
    }

    func testAnEmptyPayloadIsADefaultRequest() throws {
        let envelope = try Envelope(serialized: [])
        XCTAssertEqual(envelope.callID, 0)
        XCTAssertEqual(envelope.kind, .request)
        XCTAssertEqual(envelope.method, "")
    }

    func testAGarbageBodyIsAnInvalidArgumentNamingTheMessage() {
        XCTAssertThrowsError(try Envelope(serialized: [0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])) { error in
            XCTAssertEqual((error as? RPCError)?.status, .invalidArgument)
            XCTAssertTrue("\(error)".contains("malformed omx.Envelope (6 bytes)"), "\(error)")
        }
    }

    func testCommonMessagesSurviveTheRoundTrip() throws {
        let health = HealthResponse(service: "migrator", version: "0.1.0", nodeID: 2, uptimeMs: 12_345, mapDigest: "abc", instance: 1, pid: 99)
        XCTAssertEqual(try HealthResponse(wire: health.wire()), health)
        let ping = PingResponse(payload: [9, 8, 7], nodeID: 4)
        XCTAssertEqual(try PingResponse(wire: ping.wire()), ping)
    }

    /// The test vector of proto/README.md: a client in another language must produce this MAC.
    /// (Checked against Python's hmac and cryptography when it was written.)
    func testTheSigningStringAndMacMatchTheDocumentedVector() {
        let key = ClusterKey(bytes: Array(0..<32))
        let envelope = Envelope(
            callID: 1, kind: .request, method: "Ping", body: [0x0a, 0x02, 0x68, 0x69], deadlineMs: 2000,
            auth: EnvelopeAuth(nodeID: 1, timestampMs: 1_700_000_000_000, nonce: Array(repeating: 0xab, count: 16)))
        XCTAssertEqual(
            hexEncode(envelope.signingBytes(to: EnvelopeTests.documentedReceiver)),
            "4f4d5832" + "0000000d" + "31302e302e302e323a37373031" + "0000000000000001" + "00000000" + "00000004" + "50696e67" + "00000000" + "00000000"
                + "000007d0" + "00000001" + "0000018bcfe56800" + "00000010" + String(repeating: "ab", count: 16)
                + "00000004" + "0a026869")
        XCTAssertEqual(hexEncode(key.mac(envelope.signingBytes(to: EnvelopeTests.documentedReceiver))), EnvelopeTests.documentedMac)
    }

    /// The session vector of proto/README.md: the keys from both sides' random bytes, and the
    /// MAC of the same signing string under the client's key.
    func testTheSessionKeysAndMacMatchTheDocumentedVector() {
        let authenticator = Authenticator(key: ClusterKey(bytes: Array(0..<32)), nodeID: 1)
        let clientRandom = [UInt8](repeating: 0x11, count: 32)
        let serverRandom = [UInt8](repeating: 0x22, count: 32)
        let client = authenticator.sessionKeys(clientRandom: clientRandom, serverRandom: serverRandom, side: .client)
        let server = authenticator.sessionKeys(clientRandom: clientRandom, serverRandom: serverRandom, side: .server)
        XCTAssertEqual(hexEncode(client.sending), "967ee6903d8fd81bf4d120b265aecfd303f47b4c658a24a182be1f7d0600969c")
        XCTAssertEqual(hexEncode(client.receiving), "5553cee0d2ff81bae9e93356c4789cf0313d504ea35e0ac47b4c29a223c6a9ba")
        XCTAssertEqual(server.sending, client.receiving)
        XCTAssertEqual(server.receiving, client.sending)
        let envelope = Envelope(
            callID: 1, kind: .request, method: "Ping", body: [0x0a, 0x02, 0x68, 0x69], deadlineMs: 2000,
            auth: EnvelopeAuth(nodeID: 1, timestampMs: 1_700_000_000_000, nonce: Array(repeating: 0xab, count: 16)))
        let mac = [UInt8](unsafeUninitializedCapacity: 16) { out, count in
            envelope.withSigningHead(to: EnvelopeTests.documentedReceiver) { head in
                envelope.auth!.nonce.withUnsafeBytes { nonce in
                    envelope.body.withUnsafeBytes { SessionKeys.mac(client.sending, nonce: nonce, head: head, body: $0, into: out.baseAddress!) }
                }
            }
            count = 16
        }
        XCTAssertEqual(hexEncode(mac), "a3586c6b8b61e5353bb8c5b785e428aa")
    }

    static let documentedReceiver = "10.0.0.2:7701"
    static let documentedMac = "ccbc0dc2407b2666d918970ee899a756db0d21d15aa55db9d2d0aac2c8c66f7f"
}
