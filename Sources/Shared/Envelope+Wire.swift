import OMXProto

/// Packing and parsing envelopes with protobuf-c. These run once per call on every connection,
/// so the C message is built on the stack over Swift's own bytes and parsed into a stack
/// scratch area: no heap allocation on either side but the frame and the parsed fields.
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
        withCMessage { message in packFrame(message) }
    }

    /// The envelope as one frame ready to send, signed by `authenticator` when one is given:
    /// a fresh timestamp and nonce and the MAC for receiver `destination` ("IPv4:port", as this
    /// side reached it; with the keys of `session`, when the connection has one and the body is
    /// large enough) go into the frame, computed on the stack (the envelope's own `auth` is not
    /// used).
    public func frame(
        signedBy authenticator: Authenticator?, to destination: String, session: SessionKeys? = nil, nowMs: UInt64 = wallClockMs()
    ) -> OutgoingBytes {
        guard let authenticator else { return frame() }
        return withCMessage { message in
            withUnsafeTemporaryAllocation(byteCount: 48, alignment: 8) { stamp in
                let nonce = UnsafeMutableRawBufferPointer(rebasing: stamp[0..<16])
                let mac = UnsafeMutableRawBufferPointer(rebasing: stamp[16..<48])
                authenticator.writeNonce(into: nonce)
                let (scheme, macSize) = withSigningHead(to: destination, nodeID: authenticator.nodeID, timestampMs: nowMs, nonce: UnsafeRawBufferPointer(nonce)) { head in
                    body.withUnsafeBytes { authenticator.mac(head: head, body: $0, nonce: UnsafeRawBufferPointer(nonce), session: session, into: mac.baseAddress!) }
                }
                var wire = Omx__Auth()
                omx__auth__init(&wire)
                wire.node_id = authenticator.nodeID
                wire.timestamp_ms = nowMs
                wire.nonce = binaryData(UnsafeRawBufferPointer(nonce))
                wire.mac = binaryData(UnsafeRawBufferPointer(rebasing: mac[0..<macSize]))
                wire.scheme = Omx__AuthScheme(rawValue: scheme.rawValue)
                var signed = message.pointee
                return withUnsafeMutablePointer(to: &wire) { wire in
                    signed.auth = wire
                    return packFrame(&signed)
                }
            }
        }
    }

    private func packFrame(_ message: UnsafePointer<Omx__Envelope>) -> OutgoingBytes {
        OutgoingBytes.frame(payloadSize: omx__envelope__get_packed_size(message)) { omx__envelope__pack(message, $0) }
    }

    /// Hands `body` the C message of this envelope, whose strings and bytes point into this
    /// envelope's own storage for the duration of the call.
    private func withCMessage<T>(_ body: (UnsafePointer<Omx__Envelope>) -> T) -> T {
        var message = Omx__Envelope()
        omx__envelope__init(&message)
        message.call_id = callID
        message.kind = Omx__EnvelopeKind(rawValue: kind.rawValue)
        message.status = Omx__StatusCode(rawValue: status.rawValue)
        message.deadline_ms = deadlineMs
        return method.withCString { method in
            error.withCString { error in
                self.body.withUnsafeBytes { payload in
                    message.method = UnsafeMutablePointer(mutating: method)
                    message.error = UnsafeMutablePointer(mutating: error)
                    message.body = binaryData(payload)
                    guard let auth else { return body(&message) }
                    var wire = Omx__Auth()
                    omx__auth__init(&wire)
                    wire.node_id = auth.nodeID
                    wire.timestamp_ms = auth.timestampMs
                    wire.scheme = Omx__AuthScheme(rawValue: auth.scheme.rawValue)
                    return auth.nonce.withUnsafeBytes { nonce in
                        auth.mac.withUnsafeBytes { mac in
                            wire.nonce = binaryData(nonce)
                            wire.mac = binaryData(mac)
                            return withUnsafeMutablePointer(to: &wire) { wire in
                                message.auth = wire
                                return body(&message)
                            }
                        }
                    }
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
            return try Envelope(message, auth: auth)
        }
    }

    /// The envelope of a C message protobuf-c parsed, with `auth` as given.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) for an unknown kind or status.
    init(_ message: Omx__Envelope, auth: EnvelopeAuth?) throws {
        guard let kind = Kind(rawValue: message.kind.rawValue) else {
            throw RPCError(.invalidArgument, "envelope has unknown kind \(message.kind.rawValue)")
        }
        guard let status = StatusCode(rawValue: message.status.rawValue) else {
            throw RPCError(.invalidArgument, "envelope has unknown status \(message.status.rawValue)")
        }
        self.init(
            callID: message.call_id, kind: kind, method: cString(message.method), body: cBytes(message.body),
            status: status, error: cString(message.error), deadlineMs: message.deadline_ms, auth: auth)
    }
}

/// protobuf-c's view of Swift bytes (which it only reads while packing).
private func binaryData(_ bytes: UnsafeRawBufferPointer) -> ProtobufCBinaryData {
    ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)))
}
