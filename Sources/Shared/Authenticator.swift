import COpenSSL
import Synchronization

/// Signs outgoing TCP envelopes with the cluster key (or a connection's session keys, derived
/// from it) and checks incoming ones: the MAC, the timestamp window and the nonce (each nonce
/// is accepted once).
///
/// A nonce is 16 bytes: an 8-byte epoch chosen at random once per sender, then an 8-byte
/// big-endian counter that goes up with each envelope. The receiver remembers, per epoch, the
/// highest counter and which of the 16,384 below it were seen, so replays are refused in
/// constant memory per sender. A request stamped before the receiver started is refused too:
/// the receiver's memory of nonces started with it.
public final class Authenticator: Sendable {
    /// How far a sender's clock may be from ours, in milliseconds.
    public static let defaultSkewMs: UInt64 = 30_000

    private let key: ClusterKey
    /// The node id this side signs with (0 for a tool that is no node).
    public let nodeID: UInt32
    private let skewMs: UInt64
    private let seen = Mutex(ReplayWindow())
    /// This sender's nonce epoch, chosen at random once.
    private let epoch = randomBytes(8).withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)) }
    private let counter = Atomic<UInt64>(0)
    /// When this side started (wall clock, ms): requests stamped earlier are refused, since a
    /// request seen by the process before it could otherwise be replayed to this one.
    private let startedMs = wallClockMs()

    /// - Parameters:
    ///   - key: the cluster key.
    ///   - nodeID: our node id, carried in every envelope we sign.
    ///   - skewMs: the accepted clock difference; envelopes older or newer are refused.
    public init(key: ClusterKey, nodeID: UInt32, skewMs: UInt64 = Authenticator.defaultSkewMs) {
        self.key = key
        self.nodeID = nodeID
        self.skewMs = skewMs
    }

    /// Adds a fresh timestamp, nonce and MAC for receiver `destination` ("IPv4:port"; with
    /// `session`'s key when given and the body is large enough, see
    /// `mac(head:body:nonce:session:into:)`) to `envelope` (what
    /// `Envelope.frame(signedBy:to:session:)` does on the stack while packing, for code that
    /// wants the signed envelope itself).
    public func sign(_ envelope: inout Envelope, to destination: String, session: SessionKeys? = nil, nowMs: UInt64 = wallClockMs()) {
        let nonce = [UInt8](unsafeUninitializedCapacity: 16) { buffer, filled in
            writeNonce(into: UnsafeMutableRawBufferPointer(buffer))
            filled = 16
        }
        envelope.auth = EnvelopeAuth(nodeID: nodeID, timestampMs: nowMs, nonce: nonce)
        var scheme = AuthScheme.clusterHMACSHA256
        envelope.auth!.mac = [UInt8](unsafeUninitializedCapacity: 32) { out, filled in
            envelope.withSigningHead(to: destination) { head in
                nonce.withUnsafeBytes { nonce in
                    envelope.body.withUnsafeBytes { (scheme, filled) = mac(head: head, body: $0, nonce: nonce, session: session, into: out.baseAddress!) }
                }
            }
        }
        envelope.auth!.scheme = scheme
    }

    /// The keys of the session agreed on a connection with these random bytes, as `side` uses them.
    public func sessionKeys(clientRandom: [UInt8], serverRandom: [UInt8], side: SessionKeys.Side) -> SessionKeys {
        SessionKeys(key: key, clientRandom: clientRandom, serverRandom: serverRandom, side: side)
    }

    /// Writes the next 16-byte nonce of this sender (its epoch, then the counter, big-endian).
    func writeNonce(into nonce: UnsafeMutableRawBufferPointer) {
        let count = counter.wrappingAdd(1, ordering: .relaxed).newValue
        nonce.storeBytes(of: epoch.bigEndian, toByteOffset: 0, as: UInt64.self)
        nonce.storeBytes(of: count.bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// The MAC of a signing head followed by a body, written to `out` (room for 32 bytes): with
    /// `session` and a body of at least `SessionKeys.minimumBody` bytes, ChaCha20-Poly1305 under
    /// its sending key and the envelope's `nonce` (16 bytes), else HMAC-SHA256 under the
    /// cluster key (32 bytes).
    /// - Returns: the scheme and the MAC's length.
    func mac(
        head: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, session: SessionKeys?, into out: UnsafeMutableRawPointer
    ) -> (AuthScheme, Int) {
        guard let session, body.count >= SessionKeys.minimumBody else {
            key.mac(head, followedBy: body, into: out)
            return (.clusterHMACSHA256, 32)
        }
        SessionKeys.mac(session.sending, nonce: nonce, head: head, body: body, into: out)
        return (.sessionChaCha20Poly1305, 16)
    }

    /// An envelope's signature fields where they lie.
    struct Signature {
        var nodeID: UInt32
        var timestampMs: UInt64
        var nonce: UnsafeRawBufferPointer
        var mac: UnsafeRawBufferPointer
        /// `omx.AuthScheme`'s number, as it came.
        var scheme: UInt32
    }

    /// Checks `signature` over a signing head and a body: the MAC (under the cluster key, or
    /// `session`'s receiving key when the signature says so), the clock and the nonce.
    /// - Parameter receiver: the receiver's end the head names, for the refusal's message.
    /// - Throws: `RPCError` with status UNAUTHENTICATED saying which check failed.
    func check(
        _ signature: Signature, head: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, session: SessionKeys?, receiver: String, nowMs: UInt64,
        isRequest: Bool
    ) throws {
        let node = signature.nodeID
        guard signature.nonce.count == 16 else {
            throw RPCError(.unauthenticated, "nonce of \(signature.nonce.count) bytes from node \(node) (it must be 16: epoch and counter)")
        }
        let matches = try withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { expected in
            switch AuthScheme(rawValue: signature.scheme) {
            case .clusterHMACSHA256:
                key.mac(head, followedBy: body, into: expected.baseAddress!)
                return signature.mac.count == 32 && COpenSSL_constant_time_compare(signature.mac.baseAddress, expected.baseAddress, 32) == 0
            case .sessionChaCha20Poly1305:
                guard let session else {
                    throw RPCError(
                        .unauthenticated, "envelope from node \(node) is signed with a session key, but no session was agreed on this connection (call Session first)")
                }
                SessionKeys.mac(session.receiving, nonce: signature.nonce, head: head, body: body, into: expected.baseAddress!)
                return signature.mac.count == 16 && COpenSSL_constant_time_compare(signature.mac.baseAddress, expected.baseAddress, 16) == 0
            case nil:
                throw RPCError(.unauthenticated, "envelope from node \(node) is signed with unknown scheme \(signature.scheme)")
            }
        }
        guard matches else {
            throw RPCError(
                .unauthenticated,
                "bad MAC from node \(node): the sender holds a different cluster key, signed for another receiver than \(receiver), or the envelope was altered")
        }
        let drift = signature.timestampMs > nowMs ? signature.timestampMs - nowMs : nowMs - signature.timestampMs
        guard drift <= skewMs else {
            throw RPCError(.unauthenticated, "timestamp from node \(node) is \(drift) ms away from this clock (limit \(skewMs) ms)")
        }
        // Answers name the caller's own end of its connection, which no other connection has:
        // only requests can be replayed to a service that restarted.
        guard !isRequest || signature.timestampMs >= startedMs else {
            throw RPCError(
                .unauthenticated,
                "request from node \(node) stamped \(startedMs - signature.timestampMs) ms before this service started: a replay, or the sender's clock is behind")
        }
        let epoch = UInt64(bigEndian: signature.nonce.loadUnaligned(as: UInt64.self))
        let counter = UInt64(bigEndian: signature.nonce.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let verdict = seen.withLock { $0.admit(epoch: epoch, counter: counter, nowMs: nowMs, retentionMs: 2 * skewMs) }
        switch verdict {
        case .fresh:
            return
        case .replayed:
            throw RPCError(.unauthenticated, "replayed envelope from node \(node): nonce \(hexEncode(Array(signature.nonce))) was already used")
        case let .tooOld(highest):
            throw RPCError(
                .unauthenticated,
                "nonce \(hexEncode(Array(signature.nonce))) from node \(node) is more than \(ReplayWindow.width) behind the highest counter of its epoch (\(highest))")
        }
    }
}
