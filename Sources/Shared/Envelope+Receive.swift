/// An envelope that parsed but whose signature was refused: the call it belongs to, so that
/// the refusal can answer it, and why.
struct RefusedSignature: Error {
    let callID: UInt64
    let method: String
    let error: RPCError
}

extension Envelope {
    /// Parses a frame's payload as it arrived on a connection and, when `authenticator` is
    /// given, checks its signature on protobuf-c's parsed fields (nothing is copied to be
    /// checked, and the nonce and MAC are not kept), then hands `read` the fields, valid only
    /// during the call, and the node id that signed them when checked.
    /// - Parameters:
    ///   - receiver: this side's end of the connection ("IPv4:port"), which the signature must name.
    ///   - session: the keys agreed on the connection, if any (for envelopes signed with them).
    ///   - refusalsUnsigned: let envelopes whose status is not OK pass unsigned (a peer that
    ///     refuses us may be unable to sign).
    ///   - nowMs: this side's wall clock, read here when not given and a signature is checked.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) when the bytes are no valid envelope;
    ///   `RefusedSignature` when the signature is missing or does not hold; what `read` throws.
    static func open<T>(
        _ payload: UnsafeRawBufferPointer, verifiedBy authenticator: Authenticator?, at receiver: String, session: SessionKeys? = nil,
        refusalsUnsigned: Bool, nowMs: UInt64? = nil, _ read: (EnvelopeFields, _ signer: UInt32?) throws -> T
    ) throws -> T {
        try codec.decode(payload) { message in
            let fields = try EnvelopeFields(message)
            guard let authenticator, !(refusalsUnsigned && fields.status != .ok) else { return try read(fields, nil) }
            guard let auth = message.auth?.pointee else {
                throw RefusedSignature(
                    callID: fields.callID, method: fields.methodName,
                    error: RPCError(.unauthenticated, "envelope carries no authentication (TCP calls must be signed with the cluster key)"))
            }
            let nonce = UnsafeRawBufferPointer(start: auth.nonce.data, count: auth.nonce.len)
            let signature = Authenticator.Signature(
                nodeID: auth.node_id, timestampMs: auth.timestamp_ms, nonce: nonce, mac: UnsafeRawBufferPointer(start: auth.mac.data, count: auth.mac.len),
                scheme: auth.scheme.rawValue)
            do {
                try fields.withSigningHead(to: receiver, nodeID: auth.node_id, timestampMs: auth.timestamp_ms, nonce: nonce) { head in
                    try authenticator.check(
                        signature, head: head, body: fields.body, session: session, receiver: receiver, nowMs: nowMs ?? wallClockMs(),
                        isRequest: fields.kind == .request)
                }
            } catch let error as RPCError {
                throw RefusedSignature(callID: fields.callID, method: fields.methodName, error: error)
            }
            return try read(fields, auth.node_id)
        }
    }
}
