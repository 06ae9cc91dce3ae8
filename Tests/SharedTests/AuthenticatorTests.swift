import XCTest

@testable import Shared

final class AuthenticatorTests: XCTestCase {
    private let key = ClusterKey.generate()

    private func signedRequest(_ authenticator: Authenticator, nowMs: UInt64 = wallClockMs()) -> Envelope {
        var envelope = Envelope(callID: 7, kind: .request, method: "Ping", body: [1, 2, 3])
        authenticator.sign(&envelope, nowMs: nowMs)
        return envelope
    }

    private func assertRefused(_ envelope: Envelope, by authenticator: Authenticator, saying text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try authenticator.verify(envelope), file: file, line: line) { error in
            XCTAssertEqual((error as? RPCError)?.status, .unauthenticated, file: file, line: line)
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
    }

    func testASignedEnvelopeIsAccepted() throws {
        let sender = Authenticator(key: key, nodeID: 1)
        let receiver = Authenticator(key: key, nodeID: 2)
        XCTAssertNoThrow(try receiver.verify(signedRequest(sender)))
    }

    func testAnEnvelopeWithoutAuthenticationIsRefused() {
        assertRefused(Envelope(callID: 1, kind: .request, method: "Ping"), by: Authenticator(key: key, nodeID: 2), saying: "carries no authentication")
    }

    func testAnAlteredBodyIsRefused() {
        var envelope = signedRequest(Authenticator(key: key, nodeID: 1))
        envelope.body = [1, 2, 4]
        assertRefused(envelope, by: Authenticator(key: key, nodeID: 2), saying: "bad MAC from node 1")
    }

    func testAnAlteredMethodIsRefused() {
        var envelope = signedRequest(Authenticator(key: key, nodeID: 1))
        envelope.method = "Discovery.SetMap"
        assertRefused(envelope, by: Authenticator(key: key, nodeID: 2), saying: "bad MAC")
    }

    func testAnotherClustersKeyIsRefused() {
        let envelope = signedRequest(Authenticator(key: ClusterKey.generate(), nodeID: 1))
        assertRefused(envelope, by: Authenticator(key: key, nodeID: 2), saying: "different cluster key")
    }

    func testAStaleTimestampIsRefused() {
        let envelope = signedRequest(Authenticator(key: key, nodeID: 1), nowMs: wallClockMs() - 60_000)
        assertRefused(envelope, by: Authenticator(key: key, nodeID: 2), saying: "ms away from this clock")
    }

    func testATimestampFromTheFutureIsRefused() {
        let envelope = signedRequest(Authenticator(key: key, nodeID: 1), nowMs: wallClockMs() + 60_000)
        assertRefused(envelope, by: Authenticator(key: key, nodeID: 2), saying: "ms away from this clock")
    }

    func testAReplayedEnvelopeIsRefused() throws {
        let receiver = Authenticator(key: key, nodeID: 2)
        let envelope = signedRequest(Authenticator(key: key, nodeID: 1))
        try receiver.verify(envelope)
        assertRefused(envelope, by: receiver, saying: "replayed envelope from node 1")
    }

    func testKeyFilesAreWrittenPrivateAndLoadedBack() throws {
        let path = NSTemporaryDirectory() + "omx-key-\(UUID().uuidString)"
        defer { unlink(path) }
        try key.write(to: path, overwrite: false)
        var info = stat()
        stat(path, &info)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(try ClusterKey.load(from: path), key)
        XCTAssertThrowsError(try ClusterKey.generate().write(to: path, overwrite: false)) { error in
            XCTAssertTrue("\(error)".contains("file exists"), "\(error)")
        }
    }

    func testAKeyFileReadableByOthersIsRefused() throws {
        let path = NSTemporaryDirectory() + "omx-key-\(UUID().uuidString)"
        defer { unlink(path) }
        try key.write(to: path, overwrite: false)
        chmod(path, 0o644)
        XCTAssertThrowsError(try ClusterKey.load(from: path)) { error in
            XCTAssertTrue("\(error)".contains("readable by others (mode 644)"), "\(error)")
        }
    }

    func testAMalformedKeyFileNamesThePathAndLine() throws {
        let path = NSTemporaryDirectory() + "omx-key-\(UUID().uuidString)"
        defer { unlink(path) }
        try writeTextFile(path, "not a key\n", mode: 0o600)
        XCTAssertThrowsError(try ClusterKey.load(from: path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path):1: a cluster key is 64 hex digits"), "\(error)")
        }
    }
}
