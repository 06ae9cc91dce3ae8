import Glibc
import OMXProto

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
    /// checked, and the nonce and MAC are not kept).
    /// - Parameters:
    ///   - receiver: this side's end of the connection ("IPv4:port"), which the signature must name.
    ///   - session: the keys agreed on the connection, if any (for envelopes signed with them).
    ///   - refusalsUnsigned: let envelopes whose status is not OK pass unsigned (a peer that
    ///     refuses us may be unable to sign).
    /// - Returns: the envelope, without `auth`, and the node id that signed it when checked.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) when the bytes are no valid envelope;
    ///   `RefusedSignature` when the signature is missing or does not hold.
    static func received(
        _ payload: UnsafeRawBufferPointer, verifiedBy authenticator: Authenticator?, at receiver: String, session: SessionKeys? = nil,
        refusalsUnsigned: Bool, nowMs: UInt64 = wallClockMs()
    ) throws -> (envelope: Envelope, signer: UInt32?) {
        try codec.decode(payload) { message in
            let envelope = try Envelope(message, auth: nil)
            let body = UnsafeRawBufferPointer(start: message.body.data, count: message.body.len)
            var signer: UInt32?
            if let authenticator, !(refusalsUnsigned && envelope.status != .ok) {
                guard let auth = message.auth?.pointee else {
                    throw RefusedSignature(
                        callID: message.call_id, method: envelope.method,
                        error: RPCError(.unauthenticated, "envelope carries no authentication (TCP calls must be signed with the cluster key)"))
                }
                let nonce = UnsafeRawBufferPointer(start: auth.nonce.data, count: auth.nonce.len)
                let signature = Authenticator.Signature(
                    nodeID: auth.node_id, timestampMs: auth.timestamp_ms, nonce: nonce, mac: UnsafeRawBufferPointer(start: auth.mac.data, count: auth.mac.len),
                    scheme: auth.scheme.rawValue)
                var destination = receiver
                do {
                    try destination.withUTF8 { destination in
                        let head = SigningHead(
                            destination: UnsafeRawBufferPointer(destination), callID: message.call_id, kind: message.kind.rawValue,
                            method: cStringBytes(message.method), status: message.status.rawValue, error: cStringBytes(message.error),
                            deadlineMs: message.deadline_ms, nodeID: auth.node_id, timestampMs: auth.timestamp_ms, nonce: nonce, bodyCount: body.count)
                        try head.withBytes { try authenticator.check(signature, head: $0, body: body, session: session, receiver: receiver, nowMs: nowMs) }
                    }
                } catch let error as RPCError {
                    throw RefusedSignature(callID: message.call_id, method: envelope.method, error: error)
                }
                signer = auth.node_id
            }
            return (envelope, signer)
        }
    }
}

/// A protobuf-c string field's bytes, without the terminating NUL.
private func cStringBytes(_ pointer: UnsafeMutablePointer<CChar>?) -> UnsafeRawBufferPointer {
    guard let pointer else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: pointer, count: strlen(pointer))
}
