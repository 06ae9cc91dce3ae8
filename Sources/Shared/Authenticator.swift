import COpenSSL
import Synchronization

/// Signs outgoing TCP envelopes with the cluster key and checks incoming ones: the MAC, the
/// timestamp window and the nonce (each nonce is accepted once within the window).
public final class Authenticator: Sendable {
    /// How far a sender's clock may be from ours, in milliseconds.
    public static let defaultSkewMs: UInt64 = 30_000

    private let key: ClusterKey
    /// The node id this side signs with (0 for a tool that is no node).
    public let nodeID: UInt32
    private let skewMs: UInt64
    private let seen = Mutex(ReplayWindow())

    /// - Parameters:
    ///   - key: the cluster key.
    ///   - nodeID: our node id, carried in every envelope we sign.
    ///   - skewMs: the accepted clock difference; envelopes older or newer are refused.
    public init(key: ClusterKey, nodeID: UInt32, skewMs: UInt64 = Authenticator.defaultSkewMs) {
        self.key = key
        self.nodeID = nodeID
        self.skewMs = skewMs
    }

    /// Adds a fresh timestamp, nonce and MAC to `envelope`.
    public func sign(_ envelope: inout Envelope, nowMs: UInt64 = wallClockMs()) {
        envelope.auth = EnvelopeAuth(nodeID: nodeID, timestampMs: nowMs, nonce: randomBytes(16))
        envelope.auth!.mac = key.mac(envelope.signingBytes())
    }

    /// Checks that `envelope` was signed with our key, recently, and not seen before.
    /// - Throws: `RPCError` with status UNAUTHENTICATED saying which check failed.
    public func verify(_ envelope: Envelope, nowMs: UInt64 = wallClockMs()) throws {
        guard let auth = envelope.auth else {
            throw RPCError(.unauthenticated, "envelope carries no authentication (TCP calls must be signed with the cluster key)")
        }
        let expected = key.mac(envelope.signingBytes())
        guard auth.mac.count == expected.count,
            COpenSSL_constant_time_compare(auth.mac, expected, expected.count) == 0
        else {
            throw RPCError(.unauthenticated, "bad MAC from node \(auth.nodeID): the sender holds a different cluster key or the envelope was altered")
        }
        let drift = auth.timestampMs > nowMs ? auth.timestampMs - nowMs : nowMs - auth.timestampMs
        guard drift <= skewMs else {
            throw RPCError(.unauthenticated, "timestamp from node \(auth.nodeID) is \(drift) ms away from this clock (limit \(skewMs) ms)")
        }
        guard auth.nonce.count >= 8 else {
            throw RPCError(.unauthenticated, "nonce of \(auth.nonce.count) bytes is too short (at least 8)")
        }
        let fresh = seen.withLock { $0.insert(auth.nonce, expiresAtMs: auth.timestampMs + skewMs, nowMs: nowMs) }
        guard fresh else {
            throw RPCError(.unauthenticated, "replayed envelope from node \(auth.nodeID): nonce \(hexEncode(auth.nonce)) was already used")
        }
    }
}

/// The nonces accepted within the timestamp window.
struct ReplayWindow {
    private var expiries: [[UInt8]: UInt64] = [:]
    private var nextPruneMs: UInt64 = 0

    /// Records `nonce`; false when it was already recorded and has not expired.
    mutating func insert(_ nonce: [UInt8], expiresAtMs: UInt64, nowMs: UInt64) -> Bool {
        if nowMs >= nextPruneMs {
            expiries = expiries.filter { $0.value > nowMs }
            nextPruneMs = nowMs + 1_000
        }
        if let expiry = expiries[nonce], expiry > nowMs { return false }
        expiries[nonce] = expiresAtMs
        return true
    }
}
