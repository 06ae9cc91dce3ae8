/// The nonces accepted so far: per epoch, the highest counter and which of the `width`
/// counters below it were seen.
///
/// Each epoch keeps its bits in a ring (RFC 6479): counter c is bit `c % 64` of word
/// `(c / 64) % words`, so a new highest counter clears only the words it moves past, where a
/// shifted bitmap would move every word on every envelope.
struct ReplayWindow {
    static let width: UInt64 = 16_384

    enum Verdict: Equatable {
        case fresh
        case replayed
        case tooOld(highest: UInt64)
    }

    private struct Epoch {
        /// Words in the ring: a power of two above `width / 64`, so that the words the window
        /// spans (`width / 64 + 1` when `highest` is not on a word's start) never share one.
        static let words: UInt64 = 512
        var highest: UInt64
        var lastSeenMs: UInt64
        var bits = InlineArray<512, UInt64>(repeating: 0)

        init(first counter: UInt64, nowMs: UInt64) {
            highest = counter
            lastSeenMs = nowMs
            set(counter)
        }

        private static func word(_ counter: UInt64) -> Int { Int((counter / 64) % words) }

        private func isSet(_ counter: UInt64) -> Bool { bits[Epoch.word(counter)] & (1 << (counter % 64)) != 0 }
        private mutating func set(_ counter: UInt64) { bits[Epoch.word(counter)] |= 1 << (counter % 64) }

        /// Makes `counter` the highest: the words past the old highest's are cleared for reuse.
        private mutating func advance(to counter: UInt64) {
            let (from, to) = (highest / 64, counter / 64)
            if to - from >= Epoch.words {
                for index in bits.indices { bits[index] = 0 }
            } else if to > from {
                for block in (from + 1)...to { bits[Int(block % Epoch.words)] = 0 }
            }
            highest = counter
        }

        mutating func admit(_ counter: UInt64, nowMs: UInt64) -> Verdict {
            lastSeenMs = nowMs
            if counter > highest {
                advance(to: counter)
                set(counter)
                return .fresh
            }
            guard highest - counter < ReplayWindow.width else { return .tooOld(highest: highest) }
            if isSet(counter) { return .replayed }
            set(counter)
            return .fresh
        }
    }

    private var epochs: [UInt64: Epoch] = [:]
    private var nextPruneMs: UInt64 = 0

    /// Records the nonce (`epoch`, `counter`); says whether it is new. An epoch is kept for
    /// `retentionMs` after its last nonce, and then for a millisecond more: a nonce as old as
    /// that is refused by its timestamp.
    mutating func admit(epoch epochID: UInt64, counter: UInt64, nowMs: UInt64, retentionMs: UInt64) -> Verdict {
        if nowMs >= nextPruneMs {
            epochs = epochs.filter { $0.value.lastSeenMs + retentionMs >= nowMs }
            nextPruneMs = nowMs + 1_000
        }
        // One lookup, and the bits are changed in place through the values' modify accessor.
        guard let index = epochs.index(forKey: epochID) else {
            epochs[epochID] = Epoch(first: counter, nowMs: nowMs)
            return .fresh
        }
        return epochs.values[index].admit(counter, nowMs: nowMs)
    }
}
