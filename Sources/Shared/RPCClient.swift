import Dispatch
import CLibUV
import Glibc
import Logging
import Synchronization

/// Calls methods of one remote service over one connection, many calls in flight at once.
///
/// Over TCP, each new connection first offers the service a session (proto/README.md,
/// "Sessions"); once it is agreed, calls with large bodies are signed with the session's keys
/// instead of the cluster key. The connection is made on the first call and made again after
/// it is lost. When connecting fails, calls fail fast with UNAVAILABLE until the next attempt
/// is due; the wait doubles after each failure (with jitter) up to `maxBackoff` and resets
/// after a success.
public final class RPCClient: @unchecked Sendable {
    /// Settings of a client.
    public struct Configuration: Sendable {
        public var maxFrameSize = Frame.defaultMaxSize
        /// Signs TCP requests and checks responses; required by every OMX service on TCP.
        public var authenticator: Authenticator?
        /// The local IPv4 address TCP connections come from (a node's own map address).
        public var bindAddress: String?
        public var connectTimeout: Duration = .seconds(3)
        public var initialBackoff: Duration = .milliseconds(50)
        public var maxBackoff: Duration = .seconds(5)
        /// How long the loop keeps polling for answers, instead of sleeping, after a call goes
        /// out (`EventLoop+AnswerPolling.swift`); zero: it sleeps at once. omx.conf's
        /// `answer_poll_us`.
        public var answerPolling: Duration = .microseconds(OMXConfig.active.answerPollMicroseconds)

        public init(authenticator: Authenticator? = nil, bindAddress: String? = nil) {
            self.authenticator = authenticator
            self.bindAddress = bindAddress
        }
    }

    enum State {
        case idle
        case connecting(Connection)
        case connected(Connection)
        case waiting(untilNs: UInt64, reason: String)
        case closed
    }

    public let loop: EventLoop
    public let endpoint: RPCEndpoint
    public let configuration: Configuration
    let logger: Logger
    let nextCallID = Atomic<UInt64>(1)
    // Loop thread only (here and in RPCClient+Connecting.swift):
    var state = State.idle
    /// The keys agreed on the current connection, if any.
    var session: SessionKeys?
    /// Requests waiting for the connection, signed once it is made (their signatures name
    /// the service's end of it).
    var queued: [Envelope] = []
    var pending: PendingCalls
    let deadlines: CallDeadlines
    var connectTimer: LoopTimer?
    var backoffMs: UInt64
    /// Whether the current connection has answered any call yet.
    var answeredOnConnection = false
    /// `configuration.answerPolling` in nanoseconds.
    let answerPollingNs: UInt64

    public init(loop: EventLoop, endpoint: RPCEndpoint, configuration: Configuration = Configuration(), logger: Logger) {
        self.loop = loop
        self.endpoint = endpoint
        self.configuration = configuration
        self.logger = logger
        backoffMs = configuration.initialBackoff.milliseconds
        answerPollingNs = configuration.answerPolling.nanoseconds
        deadlines = CallDeadlines(loop: loop)
        pending = PendingCalls(loop: loop)
        deadlines.expired = { [weak self] deadline in self?.expired(deadline) }
    }

    /// A client released without `close()` closes its connection and timers all the same (the
    /// loop holds the connection, which would otherwise stay open to the service).
    deinit {
        if case .closed = state { return }
        let (connection, loop, unanswered) = (self.connection, self.loop, pending.count)
        loop.execute { [connectTimer, deadlines] in
            connection?.close(nil)
            connectTimer?.close()
            deadlines.close()
            // The loop need not poll for answers nobody will take.
            loop.answersEnded(unanswered)
        }
    }

    /// Calls `method` with `body` and returns the response's body.
    /// - Parameter timeout: how long to wait for the answer; the callee is told too.
    /// - Throws: `RPCError`: the callee's status, or UNAVAILABLE (cannot connect, with
    ///   `neverSent`; connection lost), DEADLINE_EXCEEDED, CANCELLED (the calling task was
    ///   cancelled or the client closed).
    public func call(_ method: String, _ body: [UInt8], timeout: Duration = .seconds(5)) async throws -> [UInt8] {
        let (callID, request, call) = prepare(method, body, timeout: timeout)
        let cancellation = PendingCall.Cancellation()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let pending = PendingCall(
                    waiter: .task(continuation, cancellation), method: method, deadlineNs: call.deadlineNs, timeoutMs: call.timeoutMs)
                // A task on the loop (a service's own code) starts the call without a hop.
                if loop.inLoop {
                    start(callID, pending, request)
                } else if !loop.execute({ [self] in start(callID, pending, request) }) {
                    continuation.resume(throwing: RPCError(.unavailable, "\(method) to \(endpoint): the event loop has stopped", neverSent: true))
                }
            }
        } onCancel: {
            // Told before the call reaches the loop, `start` finds it cancelled.
            cancellation.cancel()
            loop.execute { [self] in fail(callID, cancelledError(method)) }
        }
    }

    /// `call` for a thread that is neither the loop's nor Swift's cooperative pool's (a FUSE
    /// worker): it waits on a semaphore the loop signals, with no task in between.
    /// - Throws: as `call`.
    public func callBlocking(_ method: String, _ body: [UInt8], timeout: Duration = .seconds(5)) throws -> [UInt8] {
        precondition(!loop.inLoop, "callBlocking on the loop thread would wait for itself")
        let (callID, request, call) = prepare(method, body, timeout: timeout)
        let semaphore = DispatchSemaphore(value: 0)
        let result = Mutex<Result<[UInt8], Error>?>(nil)
        let complete: @Sendable (Result<[UInt8], Error>) -> Void = { outcome in
            result.withLock { $0 = outcome }
            semaphore.signal()
        }
        guard loop.run({ [self] in start(callID, PendingCall(waiter: .thread(complete), method: method, deadlineNs: call.deadlineNs, timeoutMs: call.timeoutMs), request) }) else {
            throw RPCError(.unavailable, "\(method) to \(endpoint): the event loop has stopped", neverSent: true)
        }
        semaphore.wait()
        return try result.withLock { $0! }.get()
    }

    /// A call id, the request and the deadline of a new call.
    private func prepare(_ method: String, _ body: [UInt8], timeout: Duration) -> (UInt64, Envelope, (deadlineNs: UInt64, timeoutMs: UInt64)) {
        let callID = nextCallID.wrappingAdd(1, ordering: .relaxed).oldValue
        let timeoutMs = max(timeout.milliseconds, 1)
        let envelope = Envelope(callID: callID, kind: .request, method: method, body: body, deadlineMs: UInt32(clamping: timeoutMs))
        return (callID, envelope, (monotonicNs(afterMs: timeoutMs), timeoutMs))
    }

    /// The authenticator that signs requests and checks answers: on TCP only.
    var signer: Authenticator? {
        if case .tcp = endpoint { return configuration.authenticator }
        return nil
    }

    /// Calls `method` with a typed request and decodes the typed response.
    public func call<Request: WireMessage, Response: WireMessage>(
        _ method: String, _ request: Request, returning: Response.Type, timeout: Duration = .seconds(5)
    ) async throws -> Response {
        try Response(wire: try await call(method, request.wire(), timeout: timeout))
    }

    /// Whether the current connection agreed on a session (for tests and diagnostics).
    func sessionAgreed() async -> Bool {
        (try? await loop.submit { [self] in session != nil }) ?? false
    }

    /// Fails the calls in flight with CANCELLED and closes the connection; later calls fail.
    public func close() async {
        _ = try? await loop.submit { [self] in
            let connection = self.connection
            state = .closed
            failAll(RPCError(.cancelled, "client of \(endpoint) was closed"))
            connection?.close(nil)
            deadlines.close()
            connectTimer?.close()
        }
    }

    // MARK: Loop thread

    /// The connection being made or in use, if any.
    private var connection: Connection? {
        switch state {
        case let .connecting(connection), let .connected(connection): connection
        default: nil
        }
    }

    private func start(_ callID: UInt64, _ call: PendingCall, _ request: Envelope) {
        if call.isCancelled { return call.complete(.failure(cancelledError(call.method))) }
        switch state {
        case .closed:
            call.complete(.failure(RPCError(.failedPrecondition, "client of \(endpoint) is closed", neverSent: true)))
            return
        case let .waiting(untilNs, reason):
            let now = monotonicNs()
            if now < untilNs {
                let retryMs = (untilNs - now) / 1_000_000
                call.complete(.failure(RPCError(.unavailable, "\(call.method) to \(endpoint): \(reason); next attempt in \(retryMs) ms", neverSent: true)))
                return
            }
        default:
            break
        }
        pending.add(call, as: callID)
        addDeadline(call.deadlineNs, callID)
        // Signed here, on the loop: the session's keys belong to the connection it goes out on;
        // a call waiting for a connection is signed with the cluster key.
        switch state {
        case let .connected(connection):
            connection.send(request.frame(signedBy: signer, to: connection.ends.peer, session: session))
            loop.pollForAnswers(windowNs: answerPollingNs)
        case .connecting:
            queued.append(request)
        case .idle, .waiting:
            queued.append(request)
            connect()
        case .closed:
            break
        }
    }

    func received(_ payload: UnsafeRawBufferPointer, on connection: Connection) {
        do {
            // Answers that carry data must be signed; refusals are taken as they come, since a
            // peer that refuses us (another key, an address outside its map) may be unable to sign.
            try Envelope.open(payload, verifiedBy: signer, at: connection.ends.local, session: session, refusalsUnsigned: true) { answer, _ in
                // Our own signed request sent back (by whoever sits in between) is no answer.
                guard answer.kind == .response else { throw RPCError(.dataLoss, "a request (call \(answer.callID), \(answer.methodName)), not a response") }
                answered(answer)
            }
        } catch {
            dropConnection((error as? RefusedSignature)?.error ?? error)
        }
    }

    /// Fails every call in flight with DATA_LOSS and closes the connection, which sent `reason`:
    /// an answer that cannot be read, or a stream that cannot be cut into frames any more.
    func dropConnection(_ reason: Error) {
        logger.warning("bad response from \(endpoint): \(reason)")
        failAll(RPCError(.dataLoss, "bad response from \(endpoint): \(reason)"))
        if case let .connected(connection) = state { connection.close(nil) }
    }

    /// Completes the call `answer` (a checked response, read where it lies) belongs to.
    private func answered(_ answer: EnvelopeFields) {
        if answer.callID == 0 {
            // The peer refused the connection itself and is closing it. The next call reconnects,
            // at once when the connection had served calls (one bad frame), after the backoff
            // when it had not (a service at its connection limit is not asked again at once).
            let error = String(cString: answer.error)
            if case let .connected(connection) = state {
                state = .idle
                session = nil
                connection.close(nil)
                if !answeredOnConnection { waitBeforeConnecting("\(endpoint) refused the last connection: \(error)") }
            }
            failAll(RPCError(answer.status, "\(endpoint) refused: \(error)"))
            return
        }
        answeredOnConnection = true
        backoffMs = configuration.initialBackoff.milliseconds
        guard let call = pending.remove(answer.callID) else { return }
        if answer.status == .ok {
            call.complete(.success(Array(answer.body)))
        } else {
            call.complete(.failure(RPCError(answer.status, String(cString: answer.error))))
        }
    }

    private func cancelledError(_ method: String) -> RPCError {
        RPCError(.cancelled, "\(method) to \(endpoint) was cancelled")
    }

    private func fail(_ callID: UInt64, _ error: RPCError) {
        pending.remove(callID)?.complete(.failure(error))
    }

    func failAll(_ error: RPCError) {
        let calls = pending.removeAll()
        deadlines.removeAll()
        for call in calls {
            call.complete(.failure(RPCError(error.status, "\(call.method): \(error.message)", neverSent: error.neverSent)))
        }
    }

    func addDeadline(_ ns: UInt64, _ callID: UInt64) {
        deadlines.add(CallDeadlines.Deadline(ns: ns, callID: callID), liveCount: pending.count) {
            pending.byID.map { CallDeadlines.Deadline(ns: $0.value.deadlineNs, callID: $0.key) }
        }
    }

    /// Fails the call whose deadline passed, unless it ended meanwhile. A call still waiting for
    /// the connection is taken back, never sent (another address may be tried).
    private func expired(_ deadline: CallDeadlines.Deadline) {
        guard let call = pending[deadline.callID], call.deadlineNs == deadline.ns else { return }
        if let index = queued.firstIndex(where: { $0.callID == deadline.callID }) {
            queued.remove(at: index)
            fail(deadline.callID, RPCError(.deadlineExceeded, "\(call.method) to \(endpoint): not connected within \(call.timeoutMs) ms", neverSent: true))
        } else {
            fail(deadline.callID, RPCError(.deadlineExceeded, "\(call.method) to \(endpoint) got no answer within \(call.timeoutMs) ms"))
        }
    }
}
