/// The answers of an `RPCServer`: packed, signed, counted, and refused when they cannot go
/// as they are.
extension RPCServer {
    /// What a response needs to know about its request.
    struct Call: Sendable {
        let callID: UInt64
        let method: String
        /// When the request arrived (monotonic ns), for the metrics; 0 without them.
        let started: UInt64
        let peer: String
        /// The caller's end of a TCP connection, which the answer's signature names.
        let replyTo: String
        let authenticator: Authenticator?
        /// The keys agreed on the request's connection, which sign a large answer.
        let session: SessionKeys?
        /// The method's entry, if it has one.
        let known: Entry?
    }

    /// The answer to `request`, read from `fields` (whose call passed every check of `admit`),
    /// by immediate handler `answerNow` (registered as `entry`): packed from the request's own
    /// fields and the handler's body, with no envelope built; a refusal goes the general way
    /// (`answer`).
    func answerAtOnce(
        _ fields: EnvelopeFields, _ request: RPCRequest, _ answerNow: ImmediateHandler, _ entry: Entry, started: UInt64, nowMs: UInt64?,
        on connection: Connection, _ authenticator: Authenticator?
    ) -> OutgoingBytes {
        let body: [UInt8]
        do {
            body = try answerNow(request)
        } catch {
            let call = Call(
                callID: fields.callID, method: request.method, started: started, peer: connection.peer, replyTo: connection.ends.peer,
                authenticator: authenticator, session: connection.session, known: entry)
            return answer(call, .failure(error))
        }
        let frame = body.withUnsafeBytes { body in
            EnvelopeFields(callID: fields.callID, kind: .response, method: fields.method, body: body)
                .frame(signedBy: authenticator, to: connection.ends.peer, session: connection.session, nowMs: nowMs)
        }
        guard frame.count - Frame.headerSize <= configuration.maxFrameSize else {
            let call = Call(
                callID: fields.callID, method: request.method, started: started, peer: connection.peer, replyTo: connection.ends.peer,
                authenticator: authenticator, session: connection.session, known: entry)
            return answer(call, .failure(oversizeAnswer(call, bytes: frame.count - Frame.headerSize)))
        }
        count(request.method, entry, status: .ok, started: started)
        return frame
    }

    /// The refusal of an answer larger than a frame may be: the caller could not read it, and
    /// would lose its other calls on the connection with it.
    private func oversizeAnswer(_ call: Call, bytes: Int) -> RPCError {
        let error = RPCError(
            .resourceExhausted, "\(call.method): the answer of \(bytes) bytes exceeds the maximum frame size of \(configuration.maxFrameSize) bytes")
        logger.warning("\(configuration.name): refused to send \(call.peer) \(error.message)")
        return error
    }

    /// The response to `call` (signed on TCP), counted in the metrics; refusals and internal
    /// errors are logged.
    func answer(_ call: Call, _ outcome: Result<[UInt8], Error>) -> OutgoingBytes {
        let response: Envelope
        var status = StatusCode.ok
        switch outcome {
        case let .success(body):
            response = Envelope(callID: call.callID, kind: .response, method: call.method, body: body)
        case let .failure(error):
            let failure = error as? RPCError
                ?? (error is CancellationError
                    ? RPCError(.cancelled, "\(call.method) was cancelled: its caller went away") : RPCError(.internal, "\(call.method): \(error)"))
            status = failure.status
            if failure.status == .unauthenticated || failure.status == .permissionDenied {
                warnThrottled(call.peer, "refused \(call.method) from \(call.peer): \(failure.message)")
            } else if failure.status == .internal {
                logger.error("\(configuration.name): \(call.method) from \(call.peer) failed: \(failure.message)")
            }
            response = Envelope.failure(callID: call.callID, method: call.method, failure)
        }
        let frame = response.frame(signedBy: call.authenticator, to: call.replyTo, session: call.session)
        if frame.count - Frame.headerSize > configuration.maxFrameSize, case .success = outcome {
            return answer(call, .failure(oversizeAnswer(call, bytes: frame.count - Frame.headerSize)))
        }
        count(call.method, call.known, status: status, started: call.started)
        return frame
    }
}
