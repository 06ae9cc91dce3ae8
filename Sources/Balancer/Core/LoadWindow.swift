import Shared

/// The freshest load records this node has heard, a bounded window: no node needs the whole
/// cluster's state. Older records of a node are replaced, stale ones age out, and only nodes
/// Discovery sees alive (not suspect, dead, left or mismatched) are offered as targets.
public struct LoadWindow: Sendable {
    /// How many peers' records are kept.
    public let capacity: Int
    public let staleAfterMs: UInt64
    private(set) public var records: [UInt32: NodeLoad] = [:]

    public init(capacity: Int = 16, staleAfterMs: UInt64 = 5_000) {
        self.capacity = capacity
        self.staleAfterMs = staleAfterMs
    }

    /// Keeps `record` if it is newer than what is known of its node; when full, the stalest
    /// record makes room.
    public mutating func insert(_ record: NodeLoad) {
        if let known = records[record.node], known.sampledMs >= record.sampledMs { return }
        records[record.node] = record
        while records.count > capacity, let stalest = records.values.min(by: { $0.sampledMs < $1.sampledMs }) {
            records[stalest.node] = nil
        }
    }

    /// Forgets records older than `staleAfterMs`.
    public mutating func expire(nowMs: UInt64) {
        records = records.filter { nowMs < $0.value.sampledMs || nowMs - $0.value.sampledMs <= staleAfterMs }
    }

    /// Counts `demand` onto `node`'s record until a fresher one arrives (after sending it a
    /// job), so the next round does not pile more onto it.
    public mutating func assume(_ demand: Double, movedTo node: UInt32) {
        records[node]?.load += demand
        records[node]?.jobs += 1
    }

    /// The records of nodes in `alive`.
    public func eligible(alive: Set<UInt32>) -> [NodeLoad] {
        records.values.filter { alive.contains($0.node) }.sorted { $0.node < $1.node }
    }
}
