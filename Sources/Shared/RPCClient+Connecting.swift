import CLibUV
import Glibc

/// Making, losing and backing off the connection of an `RPCClient` (loop thread only).
extension RPCClient {
    /// Makes a new connection; the calls queued meanwhile go out once it is made.
    func connect() {
        let connection: Connection
        do {
            switch endpoint {
            case .tcp:
                connection = try Connection(loop: loop, transport: .tcp, peer: endpoint.description, maxFrameSize: configuration.maxFrameSize)
            case .unix:
                connection = try Connection(loop: loop, transport: .unix, peer: endpoint.description, maxFrameSize: configuration.maxFrameSize)
            }
        } catch {
            connectFailed("\(error)")
            return
        }
        state = .connecting(connection)
        session = nil
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(self).toOpaque()
        let onConnect: uv_connect_cb = { request, status in
            let client = Unmanaged<RPCClient>.fromOpaque(request!.pointee.data!).takeRetainedValue()
            let stream = request!.pointee.handle!
            request!.deallocate()
            client.connected(Connection.owner(stream), status: status)
        }
        var rc: Int32 = 0
        switch endpoint {
        case let .tcp(host, port):
            if let source = configuration.bindAddress {
                rc = CLibUV_tcp_bind4(connection.stream.reinterpreted(as: uv_tcp_t.self), source, 0)
            }
            if rc == 0 { rc = CLibUV_tcp_connect4(request, connection.stream.reinterpreted(as: uv_tcp_t.self), host, Int32(port), onConnect) }
        case let .unix(path):
            uv_pipe_connect(request, connection.stream.reinterpreted(as: uv_pipe_t.self), path, onConnect)
        }
        if rc < 0 {
            Unmanaged<RPCClient>.fromOpaque(request.pointee.data!).release()
            request.deallocate()
            connection.close(nil)
            connectFailed("\(UVError(code: rc, operation: "connect", peer: endpoint.description))")
            return
        }
        if connectTimer == nil { connectTimer = LoopTimer(loop: loop) }
        connectTimer!.start(afterMs: configuration.connectTimeout.milliseconds) { [weak self] in
            guard let self else { return }
            if case let .connecting(attempt) = state, attempt === connection {
                connectFailed("connect \(endpoint): timed out after \(configuration.connectTimeout.milliseconds) ms")
                connection.close(nil)
            }
        }
    }

    private func connected(_ connection: Connection, status: Int32) {
        guard case let .connecting(attempt) = state, attempt === connection else {
            connection.close(nil)
            return
        }
        connectTimer?.stop()
        guard status == 0 else {
            connection.close(nil)
            connectFailed("\(UVError(code: status, operation: "connect", peer: endpoint.description))")
            return
        }
        state = .connected(connection)
        connection.readPeer()
        answeredOnConnection = false
        connection.onFrame = { [weak self] connection, payload in self?.received(payload, on: connection) }
        connection.onFrameError = { [weak self] _, error in self?.dropConnection(error) }
        connection.onClose = { [weak self] connection, error in self?.lost(connection, error) }
        do {
            try connection.startReading()
        } catch {
            // The queued calls fail with the connection: sent later, they would run for nobody.
            queued = []
            connection.close(error as? UVError)
            return
        }
        if let authenticator = signer { offerSession(on: connection, authenticator) }
        for request in queued { connection.send(request.frame(signedBy: signer, to: connection.ends.peer)) }
        queued = []
        loop.pollForAnswers(windowNs: answerPollingNs)
    }

    /// Offers the service a session on a new connection (proto/README.md, "Sessions"). Calls
    /// made meanwhile are signed with the cluster key, later ones with the session's keys; a
    /// service that does not agree (another implementation) goes on with the cluster key.
    private func offerSession(on connection: Connection, _ authenticator: Authenticator) {
        let offer = SessionOffer()
        let callID = nextCallID.wrappingAdd(1, ordering: .relaxed).oldValue
        let timeoutMs = max(configuration.connectTimeout.milliseconds, 1)
        let connectionID = ObjectIdentifier(connection)
        let complete: @Sendable (Result<[UInt8], Error>) -> Void = { [weak self] outcome in
            self?.sessionAnswered(outcome, offer, on: connectionID, authenticator)
        }
        let deadlineNs = monotonicNs(afterMs: timeoutMs)
        pending.add(PendingCall(waiter: .thread(complete), method: SessionOffer.method, deadlineNs: deadlineNs, timeoutMs: timeoutMs), as: callID)
        addDeadline(deadlineNs, callID)
        let request = Envelope(callID: callID, kind: .request, method: SessionOffer.method, body: offer.request, deadlineMs: UInt32(clamping: timeoutMs))
        connection.send(request.frame(signedBy: authenticator, to: connection.ends.peer))
    }

    /// Takes the keys of an agreed session for the connection the offer went out on.
    private func sessionAnswered(_ outcome: Result<[UInt8], Error>, _ offer: SessionOffer, on connectionID: ObjectIdentifier, _ authenticator: Authenticator) {
        guard case let .connected(current) = state, ObjectIdentifier(current) == connectionID else { return }
        do {
            session = try offer.keys(from: outcome.get(), authenticator: authenticator)
        } catch {
            logger.debug("\(endpoint) agreed on no session (\(error)); calls stay signed with the cluster key")
        }
    }

    private func connectFailed(_ reason: String) {
        queued = []
        waitBeforeConnecting(reason)
        // The calls waiting for this connection were only queued.
        failAll(RPCError(.unavailable, reason, neverSent: true))
    }

    /// Makes calls fail fast with `reason` for the backoff, which doubles (with jitter) until a
    /// call is answered.
    func waitBeforeConnecting(_ reason: String) {
        let jitter = UInt64.random(in: 0...(backoffMs / 4 + 1))
        state = .waiting(untilNs: monotonicNs() + (backoffMs + jitter) * 1_000_000, reason: reason)
        logger.debug("\(reason); retrying after \(backoffMs + jitter) ms")
        backoffMs = min(backoffMs * 2, configuration.maxBackoff.milliseconds)
    }

    private func lost(_ connection: Connection, _ error: UVError?) {
        guard case let .connected(current) = state, current === connection else { return }
        state = .idle
        session = nil
        let reason = error.map { "\($0)" } ?? "closed by the peer"
        failAll(RPCError(.unavailable, "connection to \(endpoint) lost: \(reason)"))
    }
}
