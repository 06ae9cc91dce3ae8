/// A call of an `RPCClient` waiting for its answer (loop thread only).
struct PendingCall {
    /// Who waits for the answer: told once, on the loop thread.
    enum Waiter {
        /// A task suspended in `RPCClient.call`.
        case task(UnsafeContinuation<[UInt8], Error>)
        /// A thread blocked in `RPCClient.callBlocking`.
        case thread(@Sendable (Result<[UInt8], Error>) -> Void)
    }

    let waiter: Waiter
    let method: String
    let deadlineNs: UInt64
    let timeoutMs: UInt64

    /// Tells the waiter how the call ended.
    func complete(_ result: Result<[UInt8], Error>) {
        switch waiter {
        case let .task(continuation): continuation.resume(with: result)
        case let .thread(complete): complete(result)
        }
    }
}
