import XCTest

@testable import Shared

final class AuthenticatorTests: XCTestCase {
    private let key = ClusterKey.generate()
    /// The receiving service's end of the connection, which signatures name.
    private let service = "10.0.0.2:7701"

    private func signedRequest(_ authenticator: Authenticator, to destination: String = "10.0.0.2:7701", nowMs: UInt64 = wallClockMs()) -> Envelope {
        var envelope = Envelope(callID: 7, kind: .request, method: "Ping", body: [1, 2, 3])
        authenticator.sign(&envelope, to: destination, nowMs: nowMs)
        return envelope
    }

    /// Checks `envelope` the way a connection does: parsed from its bytes, signature checked
    /// (by default at `service`).
    @discardableResult
    private func receive(
        _ envelope: Envelope, by authenticator: Authenticator, at receiver: String? = nil, refusalsUnsigned: Bool = false
    ) throws -> (envelope: Envelope, signer: UInt32?) {
        try envelope.serialized().withUnsafeBytes {
            try Envelope.received($0, verifiedBy: authenticator, at: receiver ?? service, refusalsUnsigned: refusalsUnsigned)
        }
    }

    private func assertRefused(
        _ envelope: Envelope, by authenticator: Authenticator, at receiver: String? = nil, saying text: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try receive(envelope, by: authenticator, at: receiver), file: file, line: line) { error in
            let refused = error as? RefusedSignature
            XCTAssertEqual(refused?.callID, envelope.callID, "a refusal answers the call it refuses", file: file, line: line)
            XCTAssertEqual(refused?.error.status, .unauthenticated, file: file, line: line)
            XCTAssertTrue("\(refused?.error as Any)".contains(text), "\(error)", file: file, line: line)
        }
    }

    func testASignedEnvelopeIsAcceptedAndNamesItsSigner() throws {
        let sender = Authenticator(key: key, nodeID: 1)
        let receiver = Authenticator(key: key, nodeID: 2)
        let received = try receive(signedRequest(sender), by: receiver)
        XCTAssertEqual(received.signer, 1)
        XCTAssertEqual(received.envelope.body, [1, 2, 3])
        XCTAssertNil(received.envelope.auth, "the nonce and MAC, once checked, are not kept")
    }

    func testAFrameSignedWhilePackedIsAcceptedOnceAndEqualsASignedEnvelope() throws {
        let sender = Authenticator(key: key, nodeID: 4)
        let receiver = Authenticator(key: key, nodeID: 2)
        let envelope = Envelope(callID: 11, kind: .response, method: "Discovery.Members", body: [9, 8], status: .ok, error: "", deadlineMs: 30)
        let frame = envelope.frame(signedBy: sender, to: service).withBytes { Array($0.dropFirst(Frame.headerSize)) }
        let received = try frame.withUnsafeBytes { try Envelope.received($0, verifiedBy: receiver, at: service, refusalsUnsigned: false) }
        XCTAssertEqual(received.envelope, envelope)
        XCTAssertEqual(received.signer, 4)
        XCTAssertThrowsError(try frame.withUnsafeBytes { try Envelope.received($0, verifiedBy: receiver, at: service, refusalsUnsigned: false) }) { error in
            XCTAssertTrue("\((error as? RefusedSignature)?.error as Any)".contains("replayed envelope from node 4"), "\(error)")
        }
    }

    func testUnsignedRefusalsPassOnlyWhereAllowed() throws {
        let refusal = Envelope.failure(callID: 0, method: "", RPCError(.permissionDenied, "address not in the map"))
        let receiver = Authenticator(key: key, nodeID: 2)
        XCTAssertEqual(try receive(refusal, by: receiver, refusalsUnsigned: true).envelope, refusal)
        assertRefused(refusal, by: receiver, saying: "carries no authentication")
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

    func testAnEnvelopeSignedForAnotherReceiverIsRefusedThere() throws {
        // A request to node 2's Discovery, caught on the wire and sent within the clock window
        // to node 3 (whose replay window never saw its nonce), or to node 2's Migrator.
        let sender = Authenticator(key: key, nodeID: 1)
        // Started before the request was signed: a service refuses requests stamped before it started.
        let intended = Authenticator(key: key, nodeID: 2)
        let envelope = signedRequest(sender, to: "10.0.0.2:7701")
        for elsewhere in ["10.0.0.3:7701", "10.0.0.2:7703"] {
            assertRefused(envelope, by: Authenticator(key: key, nodeID: 3), at: elsewhere, saying: "signed for another receiver than \(elsewhere)")
        }
        XCTAssertEqual(try receive(envelope, by: intended, at: "10.0.0.2:7701").signer, 1)
    }

    func testAnotherClustersKeyIsRefused() {
        let envelope = signedRequest(Authenticator(key: ClusterKey.generate(), nodeID: 1))
        assertRefused(envelope, by: Authenticator(key: key, nodeID: 2), saying: "different cluster key")
    }

    func testAnUnknownSchemeIsRefusedNamingIt() throws {
        var envelope = signedRequest(Authenticator(key: key, nodeID: 1))
        envelope.auth!.scheme = .sessionChaCha20Poly1305
        var bytes = envelope.serialized()
        // Auth is the envelope's last field and its scheme (field 5, a varint) is Auth's last.
        XCTAssertEqual(Array(bytes.suffix(2)), [0x28, 0x01])
        bytes[bytes.count - 1] = 7
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try Envelope.received($0, verifiedBy: Authenticator(key: key, nodeID: 2), at: service, refusalsUnsigned: false) }) { error in
            XCTAssertTrue("\((error as? RefusedSignature)?.error as Any)".contains("signed with unknown scheme 7"), "\(error)")
        }
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
        try receive(envelope, by: receiver)
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

    func testAKeyReplacedIsWrittenWholeInPlaceOfTheOld() throws {
        let path = NSTemporaryDirectory() + "omx-key-\(UUID().uuidString)"
        defer { unlink(path) }
        try key.write(to: path, overwrite: false)
        let replacement = ClusterKey.generate()
        try replacement.write(to: path, overwrite: true)
        XCTAssertEqual(try ClusterKey.load(from: path), replacement)
        var info = stat()
        stat(path, &info)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        let left = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix((path as NSString).lastPathComponent + ".new") }
        XCTAssertEqual(left, [], "no file left beside the key")
    }

    func testAMalformedKeyFileNamesThePathAndLine() throws {
        let path = NSTemporaryDirectory() + "omx-key-\(UUID().uuidString)"
        defer { unlink(path) }
        try writeTextFile(path, "not a key\n", mode: 0o600)
        XCTAssertThrowsError(try ClusterKey.load(from: path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path):1: a cluster key is 64 hex digits, found 9 characters"), "\(error)")
        }
        try writeTextFile(path, String(repeating: "z", count: 64) + "\n", mode: 0o600)
        XCTAssertThrowsError(try ClusterKey.load(from: path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path):1: a cluster key is 64 hex digits, found characters that are not hex digits"), "\(error)")
        }
    }
}

final class ReplayWindowTests: XCTestCase {
    func testCountersOutOfOrderWithinTheWindowAreEachAcceptedOnce() {
        var window = ReplayWindow()
        for counter: UInt64 in [5, 3, 4, 1, 2, 900, 6] {
            XCTAssertEqual(window.admit(epoch: 1, counter: counter, nowMs: 1_000, retentionMs: 60_000), .fresh, "\(counter)")
        }
        for counter: UInt64 in [1, 2, 3, 4, 5, 6, 900] {
            XCTAssertEqual(window.admit(epoch: 1, counter: counter, nowMs: 1_000, retentionMs: 60_000), .replayed, "\(counter)")
        }
    }

    func testACounterFarBehindTheHighestIsRefused() {
        var window = ReplayWindow()
        let highest = ReplayWindow.width + 5_000
        XCTAssertEqual(window.admit(epoch: 1, counter: highest, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 1, counter: highest - ReplayWindow.width, nowMs: 0, retentionMs: 60_000), .tooOld(highest: highest))
        XCTAssertEqual(window.admit(epoch: 1, counter: highest - ReplayWindow.width + 1, nowMs: 0, retentionMs: 60_000), .fresh)
    }

    func testBitsSurviveShiftsAcrossWords() {
        var window = ReplayWindow()
        XCTAssertEqual(window.admit(epoch: 7, counter: 10, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 7, counter: 10 + 130, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 7, counter: 10 + 200, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 7, counter: 10, nowMs: 0, retentionMs: 60_000), .replayed)
        XCTAssertEqual(window.admit(epoch: 7, counter: 140, nowMs: 0, retentionMs: 60_000), .replayed)
        XCTAssertEqual(window.admit(epoch: 7, counter: 11, nowMs: 0, retentionMs: 60_000), .fresh)
    }

    func testARingWordIsClearedBeforeItIsReused() {
        var window = ReplayWindow()
        // The ring holds 512 words of 64 counters: counters 5 and 6 sit in the word that
        // counters 32,768 to 32,831 reuse; 31,768 (word 496) stays within the window of 32,778.
        let ring: UInt64 = 512 * 64
        let middle = ring - 1_000
        for counter: UInt64 in [5, 6, middle, ring + 10] {
            XCTAssertEqual(window.admit(epoch: 3, counter: counter, nowMs: 0, retentionMs: 60_000), .fresh, "\(counter)")
        }
        XCTAssertEqual(window.admit(epoch: 3, counter: ring + 6, nowMs: 0, retentionMs: 60_000), .fresh, "no stale bit of counter 6")
        XCTAssertEqual(window.admit(epoch: 3, counter: ring + 6, nowMs: 0, retentionMs: 60_000), .replayed)
        XCTAssertEqual(window.admit(epoch: 3, counter: middle, nowMs: 0, retentionMs: 60_000), .replayed)
        XCTAssertEqual(window.admit(epoch: 3, counter: middle + 1, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 3, counter: 6, nowMs: 0, retentionMs: 60_000), .tooOld(highest: ring + 10))
        // A jump past the whole ring clears it: 97,304 (word 1,520, which is 496 in the ring)
        // has the bit 31,768 had.
        let jump = 3 * ring + 1_000
        XCTAssertEqual(window.admit(epoch: 3, counter: jump, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 3, counter: middle + 2 * ring, nowMs: 0, retentionMs: 60_000), .fresh, "no stale bit of counter \(middle)")
        XCTAssertEqual(window.admit(epoch: 3, counter: jump - ReplayWindow.width + 1, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 3, counter: jump - ReplayWindow.width, nowMs: 0, retentionMs: 60_000), .tooOld(highest: jump))
    }

    func testAnEpochIsKeptUntilItsNoncesAreRefusedByTheirTimestamps() {
        var window = ReplayWindow()
        XCTAssertEqual(window.admit(epoch: 4, counter: 1, nowMs: 1_000, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 4, counter: 1, nowMs: 61_000, retentionMs: 60_000), .replayed, "still remembered at exactly the retention")
    }

    func testEpochsAreIndependentAndForgottenAfterTheirRetention() {
        var window = ReplayWindow()
        XCTAssertEqual(window.admit(epoch: 1, counter: 1, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 2, counter: 1, nowMs: 0, retentionMs: 60_000), .fresh)
        XCTAssertEqual(window.admit(epoch: 1, counter: 1, nowMs: 59_000, retentionMs: 60_000), .replayed)
        XCTAssertEqual(window.admit(epoch: 2, counter: 1, nowMs: 121_000, retentionMs: 60_000), .fresh, "a timestamp check refuses such an old envelope first")
    }
}
