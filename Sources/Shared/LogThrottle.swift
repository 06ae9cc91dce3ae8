/// Lets the log lines about one peer through at most once per interval, so that a peer who
/// sends bad input without end cannot flood the log; the next line that goes through says how
/// many were held back.
struct LogThrottle {
    let intervalNs: UInt64
    /// Per peer: when its last line went through, and how many were held back since.
    private var peers: [String: (atNs: UInt64, held: Int)] = [:]
    /// Peers remembered at most; those quiet for an interval are forgotten past it.
    private static let remembered = 1_024

    init(intervalNs: UInt64 = 10_000_000_000) {
        self.intervalNs = intervalNs
    }

    /// nil to hold the line about `peer` back; else how many were held back before it.
    mutating func admit(_ peer: String, nowNs: UInt64 = monotonicNs()) -> Int? {
        if let last = peers[peer], nowNs - last.atNs < intervalNs {
            peers[peer]!.held += 1
            return nil
        }
        if peers.count >= LogThrottle.remembered { peers = peers.filter { nowNs - $0.value.atNs < intervalNs } }
        let held = peers[peer]?.held ?? 0
        peers[peer] = (nowNs, 0)
        return held
    }

    /// " (N more like it held back)", or nothing when none were.
    static func heldBack(_ count: Int) -> String {
        count == 0 ? "" : " (\(count) more from this peer held back in the last interval)"
    }
}
