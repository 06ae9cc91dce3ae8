import Shared
import Synchronization

/// The changes to a gateway's exported tree, in order, for the mounts that follow them
/// (`FSGateway.Changes`, a long poll). Each change has a position; the last `capacity` are
/// kept, and a mount asking from further back is told to forget what it cached (`reset`), as
/// it is after the kernel dropped events. A mount is never told of the changes it made itself
/// (their origin is its client id), since its own kernel cache already holds their outcome.
final class ChangeFeed: Sendable {
    fileprivate struct Entry {
        let position: UInt64
        let change: TreeChange
        let origin: UInt64
    }

    fileprivate struct State {
        var entries: [Entry] = []
        /// The position the next change gets. Positions start at a random point, so that a
        /// mount still following a gateway that restarted meanwhile is told to forget.
        var next: UInt64
        /// Changes before this position may be lost.
        var lostBefore: UInt64
        /// The position the feed had when it last answered a poll, which may have taken every
        /// change before it: one repeated after them is news again.
        var answeredBefore: UInt64 = 0
        var watching = false
        var unwatched: [String] = []
        /// Polls waiting for a change, with when they give up.
        var waiters: [UInt64: (continuation: CheckedContinuation<Void, Never>, deadline: UInt64)] = [:]
        var nextWaiter: UInt64 = 0
        /// Whether the task that ends waits at their deadline runs.
        var sweeping = false

        init() {
            next = UInt64.random(in: 1...(1 << 62))
            lostBefore = next
        }
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int = 8_192) {
        self.capacity = capacity
    }

    /// Adds a change made by `origin` (0: not through a mount) and wakes the waiting polls.
    /// The same change by the same origin right after itself (a file written piece by piece)
    /// is kept once, unless a poll may have taken the first already.
    func record(_ change: TreeChange, origin: UInt64) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if let last = state.entries.last, last.change == change, last.origin == origin, last.position >= state.lostBefore,
                last.position >= state.answeredBefore
            {
                return []
            }
            state.entries.append(Entry(position: state.next, change: change, origin: origin))
            state.next += 1
            if state.entries.count > capacity + capacity / 4 {
                state.entries.removeFirst(state.entries.count - capacity)
                state.lostBefore = state.entries[0].position
            }
            return state.takeWaiters()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Marks every change so far as possibly lost (the kernel's event queue overflowed, or a
    /// change could not be traced to a path): every mount forgets what it cached of this node.
    func loseEverything() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.entries.removeAll()
            state.next += 1
            state.lostBefore = state.next
            return state.takeWaiters()
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Says whether changes made on the node outside the gateways are seen, and which
    /// subtrees (paths relative to the export root) they are not seen in.
    func setWatching(_ watching: Bool, unwatched: [String]) {
        state.withLock { state in
            state.watching = watching
            state.unwatched = unwatched
        }
    }

    /// How long a poll that a change woke waits for more, so that a burst of changes goes out
    /// in a few answers rather than one each.
    static let gatherNs: UInt64 = 10_000_000

    /// The changes after `since` that `client` did not make, waiting up to `waitMs` for one.
    func changes(since: UInt64, client: UInt64, waitMs: UInt32) async -> ChangesResponse {
        let deadline = monotonicNs() + UInt64(waitMs) * 1_000_000
        var from = since
        var woken = false
        while true {
            let (response, seen) = state.withLock { $0.answer(since: from, client: client) }
            if !response.changes.isEmpty && woken {
                // Woken by a change: let the burst it may begin come in, then answer it all.
                try? await Task.sleep(for: .nanoseconds(ChangeFeed.gatherNs))
                return state.withLock { $0.handOut(since: since, client: client) }
            }
            if !response.changes.isEmpty || response.reset || since == 0 || monotonicNs() >= deadline {
                return state.withLock { $0.handOut(since: since, client: client) }
            }
            // Only this client's own changes, or none: wait for more from where they end.
            from = response.next
            await waitForChange(after: seen, until: deadline)
            woken = true
        }
    }

    /// Returns once a change comes after position `seen - 1`, or about `deadline` (within the
    /// second: one task ends every wait, rather than a timer each).
    private func waitForChange(after seen: UInt64, until deadline: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (now, startSweeping) = state.withLock { state -> (Bool, Bool) in
                if state.next != seen { return (true, false) }
                state.nextWaiter += 1
                state.waiters[state.nextWaiter] = (continuation, deadline)
                defer { state.sweeping = true }
                return (false, !state.sweeping)
            }
            if now { continuation.resume() }
            if startSweeping { Task { await sweep() } }
        }
    }

    /// Ends, once a second, the waits whose deadline passed; stops when none is left.
    private func sweep() async {
        while true {
            try? await Task.sleep(for: .seconds(1))
            let now = monotonicNs()
            let (expired, done) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool) in
                let expired = state.waiters.filter { $0.value.deadline <= now }
                for id in expired.keys { state.waiters[id] = nil }
                if state.waiters.isEmpty { state.sweeping = false }
                return (expired.values.map(\.continuation), state.waiters.isEmpty)
            }
            for continuation in expired { continuation.resume() }
            if done { return }
        }
    }
}

extension ChangeFeed.State {
    /// The answer to a poll from `since` by `client`, and the position the feed had then.
    /// The answer to a poll that goes out now: a change repeated after it is news again.
    fileprivate mutating func handOut(since: UInt64, client: UInt64) -> ChangesResponse {
        answeredBefore = next
        return answer(since: since, client: client).0
    }

    fileprivate func answer(since: UInt64, client: UInt64) -> (ChangesResponse, UInt64) {
        var response = ChangesResponse()
        response.next = next
        response.watching = watching
        response.unwatched = unwatched
        guard since != 0 else { return (response, next) }
        if since < lostBefore || since > next {
            response.reset = true
            return (response, next)
        }
        // Positions of the kept entries follow each other.
        let start = entries.first.map { Int(since - min(since, $0.position)) } ?? 0
        response.changes = entries.dropFirst(start).filter { $0.origin != client || client == 0 }.map(\.change)
        return (response, next)
    }

    fileprivate mutating func takeWaiters() -> [CheckedContinuation<Void, Never>] {
        defer { waiters.removeAll() }
        return waiters.values.map(\.continuation)
    }
}
