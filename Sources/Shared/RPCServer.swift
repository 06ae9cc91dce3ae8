import Logging
import Synchronization

/// Serves calls on TCP and Unix-socket listeners of one event loop.
///
/// Each request is handled in its own task, so a handler that waits never holds up the others.
/// Handlers placed on `.loop` run on the loop thread (no thread hop, for work that never
/// blocks); handlers placed on `.pool` run on Swift's global executor (for work that blocks or
/// computes at length). Immediate handlers (`registerImmediate`), for answers at hand that
/// never wait, run as the request arrives, without a task: the cheapest call. Either way the
/// response is written by the loop.
public final class RPCServer: @unchecked Sendable {
    /// A method implementation: the request's body in, the response's body out.
    /// Throw `RPCError` to answer with a status; any other error answers INTERNAL.
    public typealias Handler = @Sendable (RPCRequest) async throws -> [UInt8]
    /// A method implementation that answers at once on the loop thread: it must neither block
    /// nor wait. Throws as `Handler`.
    public typealias ImmediateHandler = @Sendable (RPCRequest) throws -> [UInt8]

    /// Where a handler runs.
    public enum Placement: Sendable {
        /// On the loop thread: must not block.
        case loop
        /// On Swift's global concurrent executor.
        case pool
    }

    /// Settings of a server.
    public struct Configuration: Sendable {
        /// Largest accepted frame; a larger one is refused and its connection closed.
        public var maxFrameSize: Int
        /// Checks TCP envelopes; nil only for tests and benchmarks that measure without it.
        public var authenticator: Authenticator?
        /// TCP peers must come from one of these addresses (the map's); nil accepts any.
        public var allowedAddresses: Set<String>?
        /// A name for logs and errors ("discovery").
        public var name: String
        /// Where calls are counted per method and status, with their durations.
        public var metrics: MetricsRegistry?
        /// Connections a local user other than root may hold at once; more are refused with
        /// RESOURCE_EXHAUSTED (a user's tools need a few).
        public var maxConnectionsPerUser = 256
        /// Connections one TCP peer address may hold at once once they signed a call (a node's
        /// services and its mount's threads need a few dozen).
        public var maxConnectionsPerAddress = 1_024
        /// TCP connections of one address that have signed no call yet; one more closes the oldest.
        public var maxUnsignedConnectionsPerAddress = 64
        /// How long a TCP connection may go without signing a call (when calls are checked).
        public var signInTimeout: Duration = .seconds(10)
        /// How long a frame may take to arrive whole, and a peer may leave all our answers
        /// unread while we hold back its requests; then the connection is closed.
        public var stalledTimeout: Duration = .seconds(30)

        public init(name: String, maxFrameSize: Int = Frame.defaultMaxSize, authenticator: Authenticator?, allowedAddresses: Set<String>?) {
            self.name = name
            self.maxFrameSize = maxFrameSize
            self.authenticator = authenticator
            self.allowedAddresses = allowedAddresses
        }
    }

    public let loop: EventLoop
    public let configuration: Configuration
    /// Calls one connection may have unanswered at once; more are refused with
    /// RESOURCE_EXHAUSTED (a pipelining client keeps far fewer in flight).
    public static let maxCallsInFlightPerConnection = 4_096
    private let logger: Logger
    /// How a registered method is answered.
    private enum Method {
        case task(Placement, Handler)
        case immediate(ImmediateHandler)
    }

    private let handlers = Mutex<[String: Method]>([:])
    private let allowedAddresses: Mutex<Set<String>?>
    // Loop thread only:
    private var listeners: [Listener] = []
    private var connections: [ObjectIdentifier: Connection] = [:]
    private let connectionGuard: ConnectionGuard
    /// Runs `connectionGuard`'s sweep at its interval.
    private var sweepTimer: LoopTimer?
    private var inFlight = 0
    private var draining = false
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    /// The drain's last step has begun: every connection is closing, and the last close ends it.
    private var closingConnections = false

    public init(loop: EventLoop, configuration: Configuration, logger: Logger) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        allowedAddresses = Mutex(configuration.allowedAddresses)
        connectionGuard = ConnectionGuard(
            limits: .init(
                perUser: configuration.maxConnectionsPerUser, perAddress: configuration.maxConnectionsPerAddress,
                unprovenPerAddress: configuration.maxUnsignedConnectionsPerAddress,
                signInTimeoutNs: configuration.signInTimeout.milliseconds * 1_000_000, stalledTimeoutNs: configuration.stalledTimeout.milliseconds * 1_000_000),
            name: configuration.name, logger: logger)
    }

    /// Replaces the addresses TCP peers may come from (after the map changed).
    public func setAllowedAddresses(_ addresses: Set<String>?) {
        allowedAddresses.withLock { $0 = addresses }
    }

    /// Adds `handler` for `method`, replacing any earlier one.
    /// - Parameter placement: where the handler runs; `.loop` handlers must never block.
    public func register(_ method: String, on placement: Placement = .loop, _ handler: @escaping Handler) {
        handlers.withLock { $0[method] = .task(placement, handler) }
    }

    /// Adds `handler` for `method`, replacing any earlier one, answered on the loop thread as
    /// each request arrives, without a task: for answers at hand that never block or wait.
    public func registerImmediate(_ method: String, _ handler: @escaping ImmediateHandler) {
        handlers.withLock { $0[method] = .immediate(handler) }
    }

    /// Adds an immediate handler that takes and returns typed messages.
    public func registerImmediate<Request: WireMessage, Response: WireMessage>(
        _ method: String, _ handler: @escaping @Sendable (Request, RPCRequest) throws -> Response
    ) {
        registerImmediate(method) { request in try handler(try Request(wire: request.body), request).wire() }
    }

    /// Adds a handler that takes and returns typed messages.
    public func register<Request: WireMessage, Response: WireMessage>(
        _ method: String, on placement: Placement = .loop, _ handler: @escaping @Sendable (Request, RPCRequest) async throws -> Response
    ) {
        register(method, on: placement) { request in
            try await handler(try Request(wire: request.body), request).wire()
        }
    }

    /// The registered method names, sorted.
    public var methods: [String] { handlers.withLock { $0.keys.sorted() } }

    /// Starts listening on `endpoint`; returns the bound TCP port (0 for Unix sockets).
    /// - Throws: `UVError` or `ConfigError` naming the endpoint.
    @discardableResult
    public func listen(on endpoint: RPCEndpoint) async throws -> Int {
        try await loop.submit { [self] in
            let listener = try Listener(loop: loop, endpoint: endpoint, maxFrameSize: configuration.maxFrameSize)
            listener.onConnection = { [weak self] connection in self?.accept(connection) }
            listener.onAcceptError = { [logger] error in logger.warning("\(error)") }
            listeners.append(listener)
            if sweepTimer == nil { sweepConnections() }
            return listener.boundPort
        }
    }

    private func accept(_ connection: Connection) {
        if draining {
            connection.close(nil)
            return
        }
        var caller: Caller
        switch connection.transport {
        case .tcp:
            let address = connection.ends.peerIP.isEmpty ? "?" : connection.ends.peerIP
            if let allowed = allowedAddresses.withLock({ $0 }), !allowed.contains(address) {
                let message = "address \(address) is not in the cluster map of \(configuration.name)"
                logger.warning("refused connection: \(message)")
                connection.send(Envelope.failure(callID: 0, method: "", RPCError(.permissionDenied, message)).frame())
                connection.closeAfterFlush()
                return
            }
            caller = .remote(address: address, nodeID: 0)
        case .unix:
            guard let credentials = connection.unixCredentials else {
                logger.warning("refused Unix connection on \(connection.peer): no peer credentials")
                connection.close(nil)
                return
            }
            caller = .local(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid, groups: credentials.groups)
        }
        let mustSign = connection.transport == .tcp && configuration.authenticator != nil
        guard connectionGuard.admit(connection, caller: caller, mustSign: mustSign) else { return }
        connections[ObjectIdentifier(connection)] = connection
        connection.pausesReadingWhilePeerLags = true
        connection.onFrame = { [weak self] connection, payload in self?.received(payload, on: connection, from: caller) }
        connection.onFrameError = { [logger] connection, error in
            logger.warning("closing connection from \(connection.peer): \(error)")
            let refusal = RPCError(.resourceExhausted, "\(error); closing the connection")
            connection.send(Envelope.failure(callID: 0, method: "", refusal).frame())
            connection.closeAfterFlush()
        }
        connection.onClose = { [weak self] connection, _ in
            self?.connections[ObjectIdentifier(connection)] = nil
            self?.connectionGuard.closed(connection)
            self?.endDrainOnceClosed()
        }
        do {
            try connection.startReading()
        } catch {
            logger.warning("\(error)")
            connection.close(nil)
        }
    }

    private func received(_ payload: UnsafeRawBufferPointer, on connection: Connection, from caller: Caller) {
        let authenticator = connection.transport == .tcp ? configuration.authenticator : nil
        let started = monotonicNs()
        let request: Envelope
        let signer: UInt32?
        do {
            (request, signer) = try Envelope.received(
                payload, verifiedBy: authenticator, at: connection.ends.local, session: connection.session, refusalsUnsigned: false)
        } catch let refused as RefusedSignature {
            let call = Call(
                callID: refused.callID, method: refused.method, started: started, peer: connection.peer, replyTo: connection.ends.peer,
                authenticator: authenticator, session: nil, known: handlers.withLock { $0[refused.method] })
            connection.send(answer(call, .failure(refused.error)))
            return
        } catch {
            logger.warning("malformed envelope from \(connection.peer): \(error)")
            let failure = RPCError(.invalidArgument, "malformed envelope (\(payload.count) bytes) from \(connection.peer)")
            connection.send(Envelope.failure(callID: 0, method: "", failure).frame(signedBy: authenticator, to: connection.ends.peer))
            return
        }
        // A first valid signature: the connection now counts against its address.
        guard connectionGuard.signed(connection) else { return }
        let call = Call(
            callID: request.callID, method: request.method, started: started, peer: connection.peer, replyTo: connection.ends.peer,
            authenticator: authenticator, session: connection.session, known: handlers.withLock { $0[request.method] })
        if request.method == SessionOffer.method, request.kind == .request, let authenticator {
            connection.send(answer(call, agreeSession(request, on: connection, authenticator)))
            return
        }
        let admitted: (RPCRequest, Method)
        do {
            admitted = try admit(request, call, from: caller, signer: signer)
        } catch {
            connection.send(answer(call, .failure(error)))
            return
        }
        let (rpcRequest, method) = admitted
        let handler: Handler, placement: Placement
        switch method {
        case let .immediate(answerNow):
            connection.send(answer(call, Result { try answerNow(rpcRequest) }))
            return
        case let .task(on, body):
            (placement, handler) = (on, body)
        }
        // Each call holds a task until it is answered: one connection may not hold without end.
        guard connection.callsInFlight < RPCServer.maxCallsInFlightPerConnection else {
            connection.send(answer(call, .failure(RPCError(
                .resourceExhausted, "\(RPCServer.maxCallsInFlightPerConnection) calls of this connection are still unanswered; wait for some answers first"))))
            return
        }
        connection.callsInFlight += 1
        inFlight += 1
        let run: @Sendable () async -> Void = { [self] in
            let response: OutgoingBytes
            do {
                response = answer(call, .success(try await handler(rpcRequest)))
            } catch {
                response = answer(call, .failure(error))
            }
            loop.run { [self] in
                connection.send(response)
                connection.callsInFlight -= 1
                inFlight -= 1
                if draining && inFlight == 0 { finishDrain() }
            }
        }
        if placement == .pool {
            Task(operation: run)
        } else {
            // Runs here and now, until the handler first waits (most never do): no trip through
            // the loop's queue, and the answer goes out in this loop iteration.
            Task.immediate(executorPreference: loop, operation: run)
        }
    }

    /// Agrees on session keys for a TCP connection (the `Session` call, proto/README.md): the
    /// answer carries our random bytes; the connection's later envelopes may be signed with them.
    private func agreeSession(_ request: Envelope, on connection: Connection, _ authenticator: Authenticator) -> Result<[UInt8], Error> {
        guard connection.session == nil else {
            return .failure(RPCError(.failedPrecondition, "a session was already agreed on this connection (one per connection)"))
        }
        guard let offer = try? SessionRequest(wire: request.body), offer.clientRandom.count == SessionKeys.randomSize else {
            return .failure(RPCError(.invalidArgument, "Session needs a SessionRequest with \(SessionKeys.randomSize) random bytes"))
        }
        let serverRandom = randomBytes(SessionKeys.randomSize)
        connection.session = authenticator.sessionKeys(clientRandom: offer.clientRandom, serverRandom: serverRandom, side: .server)
        return .success(SessionResponse(serverRandom: serverRandom).wire())
    }

    /// What a response needs to know about its request.
    private struct Call: Sendable {
        let callID: UInt64
        let method: String
        let started: UInt64
        let peer: String
        /// The caller's end of a TCP connection, which the answer's signature names.
        let replyTo: String
        let authenticator: Authenticator?
        /// The keys agreed on the request's connection, which sign a large answer.
        let session: SessionKeys?
        /// The method's handler, if it has one.
        let known: Method?
    }

    /// Checks a request (whose signature, on TCP, already held) before its handler runs: that
    /// it is one, that the server is not draining and that the method exists.
    /// - Returns: the request as the handler sees it (the caller's node id from the signature).
    /// - Throws: `RPCError` for the refusal.
    private func admit(_ request: Envelope, _ call: Call, from caller: Caller, signer: UInt32?) throws -> (RPCRequest, Method) {
        guard request.kind == .request else {
            throw RPCError(.invalidArgument, "expected a request, got a response to call \(request.callID)")
        }
        var who = caller
        if let signer, case let .remote(address, _) = caller { who = .remote(address: address, nodeID: signer) }
        guard !isDraining else {
            throw RPCError(.unavailable, "\(configuration.name) is shutting down")
        }
        guard let method = call.known else {
            throw RPCError(.unimplemented, "\(configuration.name) has no method '\(request.method)' (it has: \(methods.joined(separator: ", ")))")
        }
        return (RPCRequest(method: request.method, body: request.body, caller: who, deadlineMs: request.deadlineMs), method)
    }

    /// The response to `call` (signed on TCP), counted in the metrics; refusals are logged.
    private func answer(_ call: Call, _ outcome: Result<[UInt8], Error>) -> OutgoingBytes {
        let response: Envelope
        var status = StatusCode.ok
        switch outcome {
        case let .success(body):
            response = Envelope(callID: call.callID, kind: .response, method: call.method, body: body)
        case let .failure(error):
            let failure = error as? RPCError ?? RPCError(.internal, "\(call.method): \(error)")
            status = failure.status
            if failure.status == .unauthenticated || failure.status == .permissionDenied {
                logger.warning("refused \(call.method) from \(call.peer): \(failure.message)")
            }
            response = Envelope.failure(callID: call.callID, method: call.method, failure)
        }
        if let metrics = configuration.metrics {
            // Unknown names are counted together: a peer cannot grow the table at will.
            let method = call.known == nil && call.method != SessionOffer.method ? "(unknown)" : call.method
            metrics.add("omx_rpc_calls_total", help: "Calls answered, by method and status.", labels: [("method", method), ("status", status.description)])
            metrics.observe(
                "omx_rpc_call_seconds", help: "Time from a request's arrival to its response, by method.", labels: [("method", method)],
                Double(monotonicNs() - call.started) / 1e9)
        }
        return response.frame(signedBy: call.authenticator, to: call.replyTo, session: call.session)
    }

    private let drainingFlag = Atomic<Bool>(false)
    private var isDraining: Bool { drainingFlag.load(ordering: .relaxed) }

    /// Stops accepting, lets the calls in flight finish, then closes every connection after
    /// writing its responses, and returns once all are closed; after `grace`, what is left is
    /// closed at once. New requests meanwhile get UNAVAILABLE.
    public func shutdown(grace: Duration = .seconds(5)) async {
        drainingFlag.store(true, ordering: .relaxed)
        let deadline = Task { [self] in
            try await Task.sleep(for: grace)
            loop.execute { [self] in
                if !drainWaiters.isEmpty {
                    logger.warning(
                        "\(configuration.name): \(inFlight) calls still running and \(connections.count) connections open after \(grace); closing anyway")
                    closingConnections = true
                    for connection in connections.values { connection.close(nil) }
                    endDrainOnceClosed()
                }
            }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = loop.execute { [self] in
                draining = true
                sweepTimer?.close()
                for listener in listeners { listener.close() }
                listeners = []
                drainWaiters.append(continuation)
                if inFlight == 0 { finishDrain() }
            }
            if !accepted { continuation.resume() }
        }
        deadline.cancel()
    }

    /// Lets `connectionGuard` close the connections past a deadline, then runs again later.
    private func sweepConnections() {
        connectionGuard.sweep(connections.values)
        if sweepTimer == nil { sweepTimer = LoopTimer(loop: loop) }
        sweepTimer?.start(afterMs: connectionGuard.sweepIntervalMs) { [weak self] in self?.sweepConnections() }
    }

    private func finishDrain() {
        closingConnections = true
        for connection in connections.values { connection.closeAfterFlush() }
        endDrainOnceClosed()
    }

    /// Lets `shutdown` return once every connection wrote its answers and closed (the loop
    /// may stop then without cutting any).
    private func endDrainOnceClosed() {
        guard closingConnections, connections.isEmpty else { return }
        let waiters = drainWaiters
        drainWaiters = []
        for waiter in waiters { waiter.resume() }
    }
}
