import OMXProto

/// The proof of a TCP envelope's origin (`omx.Auth`).
public struct EnvelopeAuth: Sendable, Equatable {
    public var nodeID: UInt32
    public var timestampMs: UInt64
    public var nonce: [UInt8]
    public var mac: [UInt8]

    public init(nodeID: UInt32, timestampMs: UInt64, nonce: [UInt8], mac: [UInt8] = []) {
        self.nodeID = nodeID
        self.timestampMs = timestampMs
        self.nonce = nonce
        self.mac = mac
    }
}

/// One message on the wire (`omx.Envelope`): a request or a response.
public struct Envelope: Sendable, Equatable {
    public enum Kind: UInt32, Sendable {
        case request = 0
        case response = 1
    }

    public var callID: UInt64
    public var kind: Kind
    public var method: String
    public var body: [UInt8]
    public var status: StatusCode
    public var error: String
    /// Requests: how long the caller waits, in milliseconds (0 = no deadline).
    public var deadlineMs: UInt32
    public var auth: EnvelopeAuth?

    public init(
        callID: UInt64, kind: Kind, method: String, body: [UInt8] = [], status: StatusCode = .ok,
        error: String = "", deadlineMs: UInt32 = 0, auth: EnvelopeAuth? = nil
    ) {
        self.callID = callID
        self.kind = kind
        self.method = method
        self.body = body
        self.status = status
        self.error = error
        self.deadlineMs = deadlineMs
        self.auth = auth
    }

    /// A response to `request` carrying `body`.
    public static func response(to request: Envelope, body: [UInt8]) -> Envelope {
        Envelope(callID: request.callID, kind: .response, method: request.method, body: body)
    }

    /// A failed response to call `callID` of `method`.
    public static func failure(callID: UInt64, method: String, _ error: RPCError) -> Envelope {
        Envelope(callID: callID, kind: .response, method: method, status: error.status, error: error.message)
    }

    static let codec = ProtoCodec<Omx__Envelope>(
        name: "omx.Envelope", initialize: { omx__envelope__init($0) },
        packedSize: { omx__envelope__get_packed_size($0) }, pack: { omx__envelope__pack($0, $1) },
        unpack: { omx__envelope__unpack(nil, $0, $1) }, free: { omx__envelope__free_unpacked($0, nil) })
    static let authCodec = ProtoCodec<Omx__Auth>(
        name: "omx.Auth", initialize: { omx__auth__init($0) },
        packedSize: { omx__auth__get_packed_size($0) }, pack: { omx__auth__pack($0, $1) },
        unpack: { omx__auth__unpack(nil, $0, $1) }, free: { omx__auth__free_unpacked($0, nil) })

    /// The serialized envelope (the payload of one frame).
    public func serialized() -> [UInt8] {
        body.withUnsafeBytes { body in Envelope.codec.encode { message, arena in fill(&message, arena, body: body) } }
    }

    /// The envelope as one frame ready to send, packed in place: the body is copied once.
    public func frame() -> OutgoingBytes {
        body.withUnsafeBytes { body in Envelope.codec.encodeFrame { message, arena in fill(&message, arena, body: body) } }
    }

    /// The C message of this envelope; `body` stays Swift's (no copy) while it is packed.
    private func fill(_ message: inout Omx__Envelope, _ arena: CArena, body: UnsafeRawBufferPointer) {
        message.call_id = callID
        message.kind = Omx__EnvelopeKind(rawValue: kind.rawValue)
        message.method = arena.string(method)
        message.body = ProtobufCBinaryData(len: body.count, data: UnsafeMutablePointer(mutating: body.baseAddress?.assumingMemoryBound(to: UInt8.self)))
        message.status = Omx__StatusCode(rawValue: status.rawValue)
        message.error = arena.string(error)
        message.deadline_ms = deadlineMs
        if let auth {
            let wire = arena.message(Envelope.authCodec)
            wire.pointee.node_id = auth.nodeID
            wire.pointee.timestamp_ms = auth.timestampMs
            wire.pointee.nonce = arena.bytes(auth.nonce)
            wire.pointee.mac = arena.bytes(auth.mac)
            message.auth = wire
        }
    }

    /// Parses one frame's payload.
    /// - Throws: `RPCError` (INVALID_ARGUMENT) when the bytes are no valid envelope or carry an
    ///   unknown kind or status.
    public init(serialized bytes: [UInt8]) throws {
        self = try Envelope.codec.decode(bytes) { message in
            guard let kind = Kind(rawValue: message.kind.rawValue) else {
                throw RPCError(.invalidArgument, "envelope has unknown kind \(message.kind.rawValue)")
            }
            guard let status = StatusCode(rawValue: message.status.rawValue) else {
                throw RPCError(.invalidArgument, "envelope has unknown status \(message.status.rawValue)")
            }
            let auth = message.auth.map { wire in
                EnvelopeAuth(
                    nodeID: wire.pointee.node_id, timestampMs: wire.pointee.timestamp_ms,
                    nonce: cBytes(wire.pointee.nonce), mac: cBytes(wire.pointee.mac))
            }
            return Envelope(
                callID: message.call_id, kind: kind, method: cString(message.method), body: cBytes(message.body),
                status: status, error: cString(message.error), deadlineMs: message.deadline_ms, auth: auth)
        }
    }

    /// The bytes the MAC covers, exactly as `proto/README.md` specifies them: every field but
    /// the MAC itself, in a fixed order, integers big-endian, strings and bytes length-prefixed.
    public func signingBytes() -> [UInt8] {
        signingHead() + body
    }

    /// `signingBytes()` up to the body's length prefix: the MAC is taken over this followed
    /// by the body, which is never copied to be signed.
    func signingHead() -> [UInt8] {
        var out: [UInt8] = Array("OMX1".utf8)
        out.reserveCapacity(64 + method.utf8.count + error.utf8.count)
        func u32(_ value: UInt32) { for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }
        func u64(_ value: UInt64) { for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        func field(_ bytes: [UInt8]) { u32(UInt32(bytes.count)); out.append(contentsOf: bytes) }
        u64(callID)
        u32(kind.rawValue)
        field(Array(method.utf8))
        u32(status.rawValue)
        field(Array(error.utf8))
        u32(deadlineMs)
        u32(auth?.nodeID ?? 0)
        u64(auth?.timestampMs ?? 0)
        field(auth?.nonce ?? [])
        u32(UInt32(body.count))
        return out
    }
}
