import Logging
import Synchronization

/// Serves calls on TCP and Unix-socket listeners of one event loop.
///
/// Each request is handled in its own task, so a handler that waits never holds up the others.
/// Handlers placed on `.loop` run on the loop thread (no thread hop, for work that never
/// blocks); handlers placed on `.pool` run on Swift's global executor (for work that blocks or
/// computes at length). Immediate handlers (`registerImmediate`), for answers at hand that
/// never wait, run as the request arrives, without a task, and are answered from the request's
/// parsed fields with no envelope built: the cheapest call. Either way the response is written
/// by the loop.
public final class RPCServer: @unchecked Sendable {
    public let loop: EventLoop
    public let configuration: Configuration
    /// Calls one connection may have unanswered at once; more are refused with
    /// RESOURCE_EXHAUSTED (a pipelining client keeps far fewer in flight).
    public static let maxCallsInFlightPerConnection = 4_096
    let logger: Logger
    /// Holds back repeated warnings about one peer (bad input can come without end).
    private let logThrottle = Mutex(LogThrottle())
    /// How a registered method is answered.
    enum Method {
        case task(Placement, Handler)
        case immediate(ImmediateHandler)
    }

    private let handlers = Mutex<[String: Entry]>([:])
    /// A registered method: how it is answered and, when the server keeps metrics, the series
    /// its answers are counted in (found once, as it is registered; refusals are counted by
    /// their labels).
    struct Entry: Sendable {
        let method: Method
        let series: (seconds: MetricsRegistry.Histogram, answered: MetricsRegistry.Counter)?
    }
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
        add(method, .task(placement, handler))
    }

    /// Adds `handler` for `method`, replacing any earlier one, answered on the loop thread as
    /// each request arrives, without a task: for answers at hand that never block or wait.
    public func registerImmediate(_ method: String, _ handler: @escaping ImmediateHandler) {
        add(method, .immediate(handler))
    }

    private func add(_ name: String, _ method: Method) {
        handlers.withLock { $0[name] = Entry(method: method, series: callSeries(name)) }
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

    /// Logs `message` about `peer` as a warning, unless lines about it are being held back.
    func warnThrottled(_ peer: String, _ message: @autoclosure () -> String) {
        guard let held = logThrottle.withLock({ $0.admit(peer) }) else { return }
        logger.warning("\(message())\(LogThrottle.heldBack(held))")
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
                warnThrottled(address, "refused connection: \(message)")
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
        connection.onFrameError = { [logger, name = configuration.name] connection, error in
            logger.warning("\(name): closing the connection from \(connection.peer): \(error)")
            let refusal = RPCError(.resourceExhausted, "\(name): \(error); closing the connection")
            connection.send(Envelope.failure(callID: 0, method: "", refusal).frame())
            connection.closeAfterFlush()
        }
        connection.onClose = { [weak self] connection, _ in
            // Nobody waits for the answers of its calls any more.
            for task in connection.runningCalls.values { task.cancel() }
            connection.runningCalls = [:]
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

    /// What became of a frame read from a connection.
    private enum Arrival {
        /// Answered, or its connection closed, while its fields were at hand.
        case handled
        /// A request for the general path, with the node id that signed it and its method.
        case request(Envelope, signer: UInt32?, known: Entry?)
    }

    private func received(_ payload: UnsafeRawBufferPointer, on connection: Connection, from caller: Caller) {
        let authenticator = connection.transport == .tcp ? configuration.authenticator : nil
        // Read once per call, and only where needed: the clock that checks a TCP request signs
        // its immediate answer; the arrival time is for the metrics.
        let nowMs = authenticator == nil ? nil : wallClockMs()
        let started = configuration.metrics == nil ? 0 : monotonicNs()
        let arrival: Arrival
        do {
            arrival = try Envelope.open(
                payload, verifiedBy: authenticator, at: connection.ends.local, session: connection.session, refusalsUnsigned: false, nowMs: nowMs
            ) { fields, signer in
                // A first valid signature: the connection now counts against its address.
                guard connectionGuard.signed(connection) else { return .handled }
                let method = fields.methodName
                let known = handlers.withLock { $0[method] }
                // The common call, to a handler whose answer is at hand, is answered from the
                // parsed fields: no envelope is built either way.
                if let known, case let .immediate(answerNow) = known.method, fields.kind == .request, !isDraining, method != SessionOffer.method {
                    let request = RPCRequest(method: method, body: Array(fields.body), caller: identified(caller, signer: signer), deadlineMs: fields.deadlineMs)
                    connection.send(answerAtOnce(fields, request, answerNow, known, started: started, nowMs: nowMs, on: connection, authenticator))
                    return .handled
                }
                return .request(Envelope(fields, method: method), signer: signer, known: known)
            }
        } catch let refused as RefusedSignature {
            let call = Call(
                callID: refused.callID, method: refused.method, started: started, peer: connection.peer, replyTo: connection.ends.peer,
                authenticator: authenticator, session: nil, known: handlers.withLock { $0[refused.method] })
            connection.send(answer(call, .failure(refused.error)))
            return
        } catch {
            warnThrottled(connection.peer, "malformed envelope from \(connection.peer): \(error)")
            let failure = RPCError(.invalidArgument, "malformed envelope (\(payload.count) bytes) from \(connection.peer)")
            connection.send(Envelope.failure(callID: 0, method: "", failure).frame(signedBy: authenticator, to: connection.ends.peer))
            return
        }
        guard case let .request(request, signer, known) = arrival else { return }
        let call = Call(
            callID: request.callID, method: request.method, started: started, peer: connection.peer, replyTo: connection.ends.peer,
            authenticator: authenticator, session: connection.session, known: known)
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
            let refusal = RPCError(
                .resourceExhausted, "\(RPCServer.maxCallsInFlightPerConnection) calls of this connection are still unanswered; wait for some answers first")
            warnThrottled(connection.peer, "\(configuration.name): refused \(call.method) from \(connection.peer): \(refusal.message)")
            connection.send(answer(call, .failure(refusal)))
            return
        }
        connection.callsInFlight += 1
        inFlight += 1
        let token = connection.nextCallToken
        connection.nextCallToken &+= 1
        let run: @Sendable () async -> Void = { [self] in
            let response: OutgoingBytes
            do {
                response = answer(call, .success(try await handler(rpcRequest)))
            } catch {
                response = answer(call, .failure(error))
            }
            loop.run { [self] in
                connection.send(response)
                if connection.runningCalls.removeValue(forKey: token) == nil && !connection.isClosed { connection.callsEndedAtOnce.insert(token) }
                connection.callsInFlight -= 1
                inFlight -= 1
                if draining && inFlight == 0 { finishDrain() }
            }
        }
        // The immediate task runs here and now, until the handler first waits (most never do):
        // no trip through the loop's queue, and the answer goes out in this loop iteration.
        let task = placement == .pool ? Task(operation: run) : Task.immediate(executorPreference: loop, operation: run)
        // Kept, to be cancelled if the connection closes first, unless it ended already.
        if connection.callsEndedAtOnce.remove(token) == nil && !connection.isClosed { connection.runningCalls[token] = task }
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

    /// Checks a request (whose signature, on TCP, already held) before its handler runs: that
    /// it is one, that the server is not draining and that the method exists.
    /// - Returns: the request as the handler sees it (the caller's node id from the signature).
    /// - Throws: `RPCError` for the refusal.
    private func admit(_ request: Envelope, _ call: Call, from caller: Caller, signer: UInt32?) throws -> (RPCRequest, Method) {
        guard request.kind == .request else {
            throw RPCError(.invalidArgument, "expected a request, got a response to call \(request.callID)")
        }
        guard !isDraining else {
            throw RPCError(.unavailable, "\(configuration.name) is shutting down")
        }
        guard let method = call.known?.method else {
            throw RPCError(.unimplemented, "\(configuration.name) has no method '\(request.method)' (it has: \(methods.joined(separator: ", ")))")
        }
        return (RPCRequest(method: request.method, body: request.body, caller: identified(caller, signer: signer), deadlineMs: request.deadlineMs), method)
    }

    /// The caller of a request, with the node id that signed it (TCP).
    private func identified(_ caller: Caller, signer: UInt32?) -> Caller {
        guard let signer, case let .remote(address, _) = caller else { return caller }
        return .remote(address: address, nodeID: signer)
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
