import OMXProto

/// `omx.SessionRequest`: the client's random bytes for a connection's session keys.
public struct SessionRequest: WireMessage, Equatable {
    public var clientRandom: [UInt8]

    public init(clientRandom: [UInt8]) { self.clientRandom = clientRandom }

    static let codec = ProtoCodec<Omx__SessionRequest>(
        name: "omx.SessionRequest", initialize: { omx__session_request__init($0) },
        packedSize: { omx__session_request__get_packed_size($0) }, pack: { omx__session_request__pack($0, $1) },
        unpack: { omx__session_request__unpack($0, $1, $2) }, free: { omx__session_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try SessionRequest.codec.decode(bytes) { SessionRequest(clientRandom: cBytes($0.client_random)) }
    }

    public func wire() -> [UInt8] {
        SessionRequest.codec.encode { message, arena in message.client_random = arena.bytes(clientRandom) }
    }
}

/// `omx.SessionResponse`: the server's random bytes for the connection's session keys.
public struct SessionResponse: WireMessage, Equatable {
    public var serverRandom: [UInt8]

    public init(serverRandom: [UInt8]) { self.serverRandom = serverRandom }

    static let codec = ProtoCodec<Omx__SessionResponse>(
        name: "omx.SessionResponse", initialize: { omx__session_response__init($0) },
        packedSize: { omx__session_response__get_packed_size($0) }, pack: { omx__session_response__pack($0, $1) },
        unpack: { omx__session_response__unpack($0, $1, $2) }, free: { omx__session_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try SessionResponse.codec.decode(bytes) { SessionResponse(serverRandom: cBytes($0.server_random)) }
    }

    public func wire() -> [UInt8] {
        SessionResponse.codec.encode { message, arena in message.server_random = arena.bytes(serverRandom) }
    }
}
