import COpenSSL
import Synchronization

/// Signs outgoing TCP envelopes with the cluster key and checks incoming ones: the MAC, the
/// timestamp window and the nonce (each nonce is accepted once).
///
/// A nonce is 16 bytes: an 8-byte epoch chosen at random once per sender, then an 8-byte
/// big-endian counter that goes up with each envelope. The receiver remembers, per epoch, the
/// highest counter and which of the 1,024 below it were seen, so replays are refused in
/// constant memory per sender.
public final class Authenticator: Sendable {
    /// How far a sender's clock may be from ours, in milliseconds.
    public static let defaultSkewMs: UInt64 = 30_000

    private let key: ClusterKey
    /// The node id this side signs with (0 for a tool that is no node).
    public let nodeID: UInt32
    private let skewMs: UInt64
    private let seen = Mutex(ReplayWindow())
    private let epoch = randomBytes(8)
    private let counter = Atomic<UInt64>(0)

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
        let count = counter.wrappingAdd(1, ordering: .relaxed).newValue
        var nonce = epoch
        for shift in stride(from: 56, through: 0, by: -8) { nonce.append(UInt8(truncatingIfNeeded: count >> UInt64(shift))) }
        envelope.auth = EnvelopeAuth(nodeID: nodeID, timestampMs: nowMs, nonce: nonce)
        envelope.auth!.mac = key.mac(envelope.signingHead(), followedBy: envelope.body)
    }

    /// Checks that `envelope` was signed with our key, recently, and not seen before.
    /// - Throws: `RPCError` with status UNAUTHENTICATED saying which check failed.
    public func verify(_ envelope: Envelope, nowMs: UInt64 = wallClockMs()) throws {
        guard let auth = envelope.auth else {
            throw RPCError(.unauthenticated, "envelope carries no authentication (TCP calls must be signed with the cluster key)")
        }
        let expected = key.mac(envelope.signingHead(), followedBy: envelope.body)
        guard auth.mac.count == expected.count,
            COpenSSL_constant_time_compare(auth.mac, expected, expected.count) == 0
        else {
            throw RPCError(.unauthenticated, "bad MAC from node \(auth.nodeID): the sender holds a different cluster key or the envelope was altered")
        }
        let drift = auth.timestampMs > nowMs ? auth.timestampMs - nowMs : nowMs - auth.timestampMs
        guard drift <= skewMs else {
            throw RPCError(.unauthenticated, "timestamp from node \(auth.nodeID) is \(drift) ms away from this clock (limit \(skewMs) ms)")
        }
        guard auth.nonce.count == 16 else {
            throw RPCError(.unauthenticated, "nonce of \(auth.nonce.count) bytes from node \(auth.nodeID) (it must be 16: epoch and counter)")
        }
        let verdict = seen.withLock { $0.admit(auth.nonce, nowMs: nowMs, retentionMs: 2 * skewMs) }
        switch verdict {
        case .fresh:
            return
        case .replayed:
            throw RPCError(.unauthenticated, "replayed envelope from node \(auth.nodeID): nonce \(hexEncode(auth.nonce)) was already used")
        case let .tooOld(highest):
            throw RPCError(.unauthenticated, "nonce \(hexEncode(auth.nonce)) from node \(auth.nodeID) is more than \(ReplayWindow.width) behind the highest counter of its epoch (\(highest))")
        }
    }
}

/// The nonces accepted so far: per epoch, the highest counter and a bitmap of the `width`
/// counters below it.
struct ReplayWindow {
    static let width: UInt64 = 1024

    enum Verdict: Equatable {
        case fresh
        case replayed
        case tooOld(highest: UInt64)
    }

    private struct Epoch {
        var highest: UInt64
        /// Bit k of the bitmap: counter `highest - k` was seen.
        var bits = [UInt64](repeating: 0, count: Int(ReplayWindow.width / 64))
        var lastSeenMs: UInt64

        mutating func shift(by distance: UInt64) {
            guard distance < ReplayWindow.width else {
                for index in bits.indices { bits[index] = 0 }
                return
            }
            let words = Int(distance / 64)
            let offset = distance % 64
            for index in stride(from: bits.count - 1, through: 0, by: -1) {
                let source = index - words
                var value: UInt64 = source >= 0 ? bits[source] << offset : 0
                if offset > 0 && source - 1 >= 0 { value |= bits[source - 1] >> (64 - offset) }
                bits[index] = value
            }
        }

        func isSet(_ position: UInt64) -> Bool { bits[Int(position / 64)] & (1 << (position % 64)) != 0 }
        mutating func set(_ position: UInt64) { bits[Int(position / 64)] |= 1 << (position % 64) }
    }

    private var epochs: [UInt64: Epoch] = [:]
    private var nextPruneMs: UInt64 = 0

    /// Records a 16-byte nonce; says whether it is new.
    mutating func admit(_ nonce: [UInt8], nowMs: UInt64, retentionMs: UInt64) -> Verdict {
        if nowMs >= nextPruneMs {
            epochs = epochs.filter { $0.value.lastSeenMs + retentionMs > nowMs }
            nextPruneMs = nowMs + 1_000
        }
        var epochID: UInt64 = 0
        var counter: UInt64 = 0
        for index in 0..<8 {
            epochID = epochID << 8 | UInt64(nonce[index])
            counter = counter << 8 | UInt64(nonce[8 + index])
        }
        guard var epoch = epochs[epochID] else {
            var epoch = Epoch(highest: counter, lastSeenMs: nowMs)
            epoch.set(0)
            epochs[epochID] = epoch
            return .fresh
        }
        defer { epochs[epochID] = epoch }
        epoch.lastSeenMs = nowMs
        if counter > epoch.highest {
            epoch.shift(by: counter - epoch.highest)
            epoch.highest = counter
            epoch.set(0)
            return .fresh
        }
        let behind = epoch.highest - counter
        guard behind < ReplayWindow.width else { return .tooOld(highest: epoch.highest) }
        if epoch.isSet(behind) { return .replayed }
        epoch.set(behind)
        return .fresh
    }
}
