import OMXProto

/// Packing and parsing envelopes with protobuf-c, through `EnvelopeFields`: the C message is
/// built on the stack over Swift's own bytes and parsed into a stack scratch area, so neither
/// side allocates on the heap but for the frame and the parsed fields.
extension Envelope {
    static let codec = ProtoCodec<Omx__Envelope>(
        name: "omx.Envelope", initialize: { omx__envelope__init($0) },
        packedSize: { omx__envelope__get_packed_size($0) }, pack: { omx__envelope__pack($0, $1) },
        unpack: { omx__envelope__unpack($0, $1, $2) }, free: { omx__envelope__free_unpacked($0, $1) })

    /// The serialized envelope (the payload of one frame).
    public func serialized() -> [UInt8] {
        withCMessage { message in
            let size = omx__envelope__get_packed_size(message)
            return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = size == 0 ? 0 : omx__envelope__pack(message, buffer.baseAddress!)
            }
        }
    }

    /// The envelope as one frame ready to send, packed in place: the body is copied once.
    public func frame() -> OutgoingBytes {
        withCMessage { packFrame($0) }
    }

    /// The envelope as one frame ready to send, signed by `authenticator` when one is given (see
    /// `EnvelopeFields.frame(signedBy:to:session:nowMs:)`; the envelope's own `auth` is not used).
    public func frame(
        signedBy authenticator: Authenticator?, to destination: String, session: SessionKeys? = nil, nowMs: UInt64? = nil
    ) -> OutgoingBytes {
        guard let authenticator else { return frame() }
        return withFields { $0.frame(signedBy: authenticator, to: destination, session: session, nowMs: nowMs) }
    }

    /// Hands `body` this envelope's fields, pointing into its own storage for the duration of
    /// the call.
    func withFields<T>(_ body: (EnvelopeFields) throws -> T) rethrows -> T {
        try method.withCString { method in
            try error.withCString { error in
                try self.body.withUnsafeBytes { payload in
                    try body(
                        EnvelopeFields(callID: callID, kind: kind, method: method, status: status, error: error, deadlineMs: deadlineMs, body: payload))
                }
            }
        }
    }

    /// Hands `body` the C message of this envelope, with its own `auth`.
    private func withCMessage<T>(_ body: (UnsafePointer<Omx__Envelope>) -> T) -> T {
        withFields { fields in
            guard let auth else { return fields.withCMessage(body) }
            var wire = Omx__Auth()
            omx__auth__init(&wire)
            wire.node_id = auth.nodeID
            wire.timestamp_ms = auth.timestampMs
            wire.scheme = Omx__AuthScheme(rawValue: auth.scheme.rawValue)
            return auth.nonce.withUnsafeBytes { nonce in
                auth.mac.withUnsafeBytes { mac in
                    wire.nonce = binaryData(nonce)
                    wire.mac = binaryData(mac)
                    return fields.withCMessage(auth: &wire, body)
                }
            }
        }
    }

    /// Parses one frame's payload.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) when the bytes are no valid envelope or carry an
    ///   unknown kind or status.
    public init(serialized bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try Envelope(serialized: $0) }
    }

    /// Parses one frame's payload where it lies (in a connection's read buffer).
    /// - Throws: as `init(serialized:)`.
    public init(serialized bytes: UnsafeRawBufferPointer) throws {
        self = try Envelope.codec.decode(bytes) { message in
            let auth = message.auth.map { wire in
                EnvelopeAuth(
                    nodeID: wire.pointee.node_id, timestampMs: wire.pointee.timestamp_ms,
                    nonce: cBytes(wire.pointee.nonce), mac: cBytes(wire.pointee.mac),
                    scheme: AuthScheme(rawValue: wire.pointee.scheme.rawValue) ?? .clusterHMACSHA256)
            }
            return Envelope(try EnvelopeFields(message), auth: auth)
        }
    }

    /// The envelope of `fields`, copied, with `auth` as given.
    init(_ fields: EnvelopeFields, method: String? = nil, auth: EnvelopeAuth? = nil) {
        self.init(
            callID: fields.callID, kind: fields.kind, method: method ?? fields.methodName, body: Array(fields.body), status: fields.status,
            error: String(cString: fields.error), deadlineMs: fields.deadlineMs, auth: auth)
    }
}
