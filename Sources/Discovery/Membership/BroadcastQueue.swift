import Shared

/// The updates waiting to be piggybacked on outgoing messages (SWIM's dissemination).
///
/// Each member has at most one pending update (a newer one replaces it); the least-sent go
/// first; an update is dropped after `limit` sends.
struct BroadcastQueue {
    private var pending: [UInt32: (update: MemberUpdate, sends: Int)] = [:]

    var count: Int { pending.count }

    /// Queues `update`, replacing an older one about the same member.
    mutating func enqueue(_ update: MemberUpdate) {
        pending[update.nodeID] = (update, 0)
    }

    /// Up to `max` updates to send now; each counts as one more send.
    mutating func take(max: Int, limit: Int) -> [MemberUpdate] {
        guard !pending.isEmpty else { return [] }
        let chosen = pending.sorted { ($0.value.sends, $0.key) < ($1.value.sends, $1.key) }.prefix(max)
        var updates: [MemberUpdate] = []
        for (nodeID, entry) in chosen {
            updates.append(entry.update)
            if entry.sends + 1 >= limit {
                pending[nodeID] = nil
            } else {
                pending[nodeID] = (entry.update, entry.sends + 1)
            }
        }
        return updates
    }
}
