import Glibc
import OMXProto

/// An envelope's fields where they lie: protobuf-c's parsed message, or a Swift `Envelope`'s
/// own storage. A call is read, checked and answered through these without building an
/// `Envelope` (no String, Array or struct copy per call); `Envelope` packs and signs through
/// them too, so both ways share one encoder and one signing string.
struct EnvelopeFields {
    var callID: UInt64
    var kind: Envelope.Kind
    /// NUL-terminated.
    var method: UnsafePointer<CChar>
    var status: StatusCode
    /// NUL-terminated.
    var error: UnsafePointer<CChar>
    var deadlineMs: UInt32
    var body: UnsafeRawBufferPointer

    /// The empty C string, for a field protobuf-c left unset or an answer without error.
    static let emptyString: UnsafePointer<CChar> = UnsafePointer(strdup("")!)

    init(
        callID: UInt64, kind: Envelope.Kind, method: UnsafePointer<CChar>, status: StatusCode = .ok, error: UnsafePointer<CChar> = emptyString,
        deadlineMs: UInt32 = 0, body: UnsafeRawBufferPointer
    ) {
        self.callID = callID
        self.kind = kind
        self.method = method
        self.status = status
        self.error = error
        self.deadlineMs = deadlineMs
        self.body = body
    }

    /// The fields of a C message protobuf-c parsed, valid while it lives.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) for an unknown kind or status.
    init(_ message: Omx__Envelope) throws {
        guard let kind = Envelope.Kind(rawValue: message.kind.rawValue) else {
            throw RPCError(.invalidArgument, "envelope has unknown kind \(message.kind.rawValue)")
        }
        guard let status = StatusCode(rawValue: message.status.rawValue) else {
            throw RPCError(.invalidArgument, "envelope has unknown status \(message.status.rawValue)")
        }
        self.init(
            callID: message.call_id, kind: kind, method: UnsafePointer(message.method) ?? EnvelopeFields.emptyString, status: status,
            error: UnsafePointer(message.error) ?? EnvelopeFields.emptyString, deadlineMs: message.deadline_ms,
            body: UnsafeRawBufferPointer(start: message.body.data, count: message.body.len))
    }

    /// The method's name as a Swift string.
    var methodName: String { String(cString: method) }

    /// Hands `body` the C message of these fields, with `auth` when given.
    func withCMessage<T>(auth: UnsafeMutablePointer<Omx__Auth>? = nil, _ body: (UnsafePointer<Omx__Envelope>) -> T) -> T {
        var message = Omx__Envelope()
        omx__envelope__init(&message)
        message.call_id = callID
        message.kind = Omx__EnvelopeKind(rawValue: kind.rawValue)
        message.status = Omx__StatusCode(rawValue: status.rawValue)
        message.deadline_ms = deadlineMs
        message.method = UnsafeMutablePointer(mutating: method)
        message.error = UnsafeMutablePointer(mutating: error)
        message.body = binaryData(self.body)
        message.auth = auth
        return body(&message)
    }

    /// These fields as one frame ready to send, signed by `authenticator` when one is given: a
    /// fresh timestamp and nonce and the MAC for receiver `destination` ("IPv4:port", as this
    /// side reached it; with the keys of `session`, when the connection has one and the body is
    /// large enough) go into the frame, computed on the stack. `nowMs` is the wall clock, read
    /// here when not given.
    func frame(signedBy authenticator: Authenticator?, to destination: String, session: SessionKeys?, nowMs: UInt64? = nil) -> OutgoingBytes {
        guard let authenticator else { return withCMessage { packFrame($0) } }
        let nowMs = nowMs ?? wallClockMs()
        return withUnsafeTemporaryAllocation(byteCount: 48, alignment: 8) { stamp in
            let nonce = UnsafeMutableRawBufferPointer(rebasing: stamp[0..<16])
            let mac = UnsafeMutableRawBufferPointer(rebasing: stamp[16..<48])
            authenticator.writeNonce(into: nonce)
            let (scheme, macSize) = withSigningHead(to: destination, nodeID: authenticator.nodeID, timestampMs: nowMs, nonce: UnsafeRawBufferPointer(nonce)) { head in
                authenticator.mac(head: head, body: self.body, nonce: UnsafeRawBufferPointer(nonce), session: session, into: mac.baseAddress!)
            }
            var wire = Omx__Auth()
            omx__auth__init(&wire)
            wire.node_id = authenticator.nodeID
            wire.timestamp_ms = nowMs
            wire.nonce = binaryData(UnsafeRawBufferPointer(nonce))
            wire.mac = binaryData(UnsafeRawBufferPointer(rebasing: mac[0..<macSize]))
            wire.scheme = Omx__AuthScheme(rawValue: scheme.rawValue)
            return withCMessage(auth: &wire) { packFrame($0) }
        }
    }

    /// Hands `body` the signing string of these fields up to the body (`SigningHead`), as
    /// signed for receiver `destination` by `nodeID` at `timestampMs` with `nonce`.
    func withSigningHead<T>(
        to destination: String, nodeID: UInt32, timestampMs: UInt64, nonce: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> T
    ) rethrows -> T {
        var destination = destination
        return try destination.withUTF8 { destination in
            try SigningHead(
                destination: UnsafeRawBufferPointer(destination), callID: callID, kind: kind.rawValue,
                method: UnsafeRawBufferPointer(start: method, count: strlen(method)), status: status.rawValue,
                error: UnsafeRawBufferPointer(start: error, count: strlen(error)), deadlineMs: deadlineMs, nodeID: nodeID,
                timestampMs: timestampMs, nonce: nonce, bodyCount: self.body.count
            ).withBytes(body)
        }
    }
}

/// Packs `message` in place into a new frame: the body is copied once.
func packFrame(_ message: UnsafePointer<Omx__Envelope>) -> OutgoingBytes {
    OutgoingBytes.frame(payloadSize: omx__envelope__get_packed_size(message)) { omx__envelope__pack(message, $0) }
}

/// protobuf-c's view of Swift bytes (which it only reads while packing).
func binaryData(_ bytes: UnsafeRawBufferPointer) -> ProtobufCBinaryData {
    ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)))
}
