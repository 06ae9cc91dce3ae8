import Synchronization

/// A call of an `RPCClient` waiting for its answer (loop thread only).
struct PendingCall {
    /// Who waits for the answer: told once, on the loop thread.
    enum Waiter {
        /// A task suspended in `RPCClient.call`, and whether it was cancelled.
        case task(UnsafeContinuation<[UInt8], Error>, Cancellation)
        /// A thread blocked in `RPCClient.callBlocking`.
        case thread(@Sendable (Result<[UInt8], Error>) -> Void)
    }

    /// Whether a calling task was cancelled: set on whichever thread cancels it, read on the
    /// loop, where a cancellation that came before the call did is found.
    final class Cancellation: Sendable {
        private let cancelled = Atomic(false)

        func cancel() { cancelled.store(true, ordering: .releasing) }
        var isCancelled: Bool { cancelled.load(ordering: .acquiring) }
    }

    let waiter: Waiter
    let method: String
    let deadlineNs: UInt64
    let timeoutMs: UInt64

    /// Whether the calling task was cancelled.
    var isCancelled: Bool {
        if case let .task(_, cancellation) = waiter { return cancellation.isCancelled }
        return false
    }

    /// Tells the waiter how the call ended.
    func complete(_ result: Result<[UInt8], Error>) {
        switch waiter {
        case let .task(continuation, _): continuation.resume(with: result)
        case let .thread(complete): complete(result)
        }
    }
}

/// The calls of one `RPCClient` awaiting their answers, by call id (loop thread only). The
/// loop counts them with those of its other clients: it polls for answers only while any is
/// awaited (`EventLoop+AnswerPolling.swift`).
struct PendingCalls {
    private(set) var byID: [UInt64: PendingCall] = [:]
    private unowned let loop: EventLoop

    init(loop: EventLoop) {
        self.loop = loop
    }

    var count: Int { byID.count }

    subscript(callID: UInt64) -> PendingCall? { byID[callID] }

    mutating func add(_ call: PendingCall, as callID: UInt64) {
        if byID.updateValue(call, forKey: callID) == nil { loop.answerAwaited() }
    }

    /// The call `callID`, no longer pending; nil when it was not.
    mutating func remove(_ callID: UInt64) -> PendingCall? {
        guard let call = byID.removeValue(forKey: callID) else { return nil }
        loop.answersEnded()
        return call
    }

    /// Every pending call, none pending any more.
    mutating func removeAll() -> [PendingCall] {
        let calls = Array(byID.values)
        byID = [:]
        loop.answersEnded(calls.count)
        return calls
    }
}
