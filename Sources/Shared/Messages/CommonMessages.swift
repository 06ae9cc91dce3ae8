import OMXProto

/// `omx.PingRequest`: a payload the service echoes.
public struct PingRequest: WireMessage, Equatable {
    public var payload: [UInt8]

    public init(payload: [UInt8] = []) { self.payload = payload }

    static let codec = ProtoCodec<Omx__PingRequest>(
        name: "omx.PingRequest", initialize: { omx__ping_request__init($0) },
        packedSize: { omx__ping_request__get_packed_size($0) }, pack: { omx__ping_request__pack($0, $1) },
        unpack: { omx__ping_request__unpack($0, $1, $2) }, free: { omx__ping_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try PingRequest.codec.decode(bytes) { PingRequest(payload: cBytes($0.payload)) }
    }

    public func wire() -> [UInt8] {
        PingRequest.codec.encode { message, arena in message.payload = arena.bytes(payload) }
    }
}

/// `omx.PingResponse`: the echoed payload and the answering node.
public struct PingResponse: WireMessage, Equatable {
    public var payload: [UInt8]
    public var nodeID: UInt32

    public init(payload: [UInt8], nodeID: UInt32) {
        self.payload = payload
        self.nodeID = nodeID
    }

    static let codec = ProtoCodec<Omx__PingResponse>(
        name: "omx.PingResponse", initialize: { omx__ping_response__init($0) },
        packedSize: { omx__ping_response__get_packed_size($0) }, pack: { omx__ping_response__pack($0, $1) },
        unpack: { omx__ping_response__unpack($0, $1, $2) }, free: { omx__ping_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try PingResponse.codec.decode(bytes) { PingResponse(payload: cBytes($0.payload), nodeID: $0.node_id) }
    }

    public func wire() -> [UInt8] {
        PingResponse.codec.encode { message, arena in
            message.payload = arena.bytes(payload)
            message.node_id = nodeID
        }
    }
}

/// `omx.HealthRequest`.
public struct HealthRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__HealthRequest>(
        name: "omx.HealthRequest", initialize: { omx__health_request__init($0) },
        packedSize: { omx__health_request__get_packed_size($0) }, pack: { omx__health_request__pack($0, $1) },
        unpack: { omx__health_request__unpack($0, $1, $2) }, free: { omx__health_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try HealthRequest.codec.decode(bytes) { _ in HealthRequest() }
    }

    public func wire() -> [UInt8] { HealthRequest.codec.encode { _, _ in } }
}

/// `omx.HealthResponse`: which service answers, its version, node, uptime and map digest.
public struct HealthResponse: WireMessage, Equatable {
    public var service: String
    public var version: String
    public var nodeID: UInt32
    public var uptimeMs: UInt64
    public var mapDigest: String
    public var instance: UInt32
    public var pid: UInt32

    public init(service: String, version: String, nodeID: UInt32, uptimeMs: UInt64, mapDigest: String, instance: UInt32, pid: UInt32) {
        self.service = service
        self.version = version
        self.nodeID = nodeID
        self.uptimeMs = uptimeMs
        self.mapDigest = mapDigest
        self.instance = instance
        self.pid = pid
    }

    static let codec = ProtoCodec<Omx__HealthResponse>(
        name: "omx.HealthResponse", initialize: { omx__health_response__init($0) },
        packedSize: { omx__health_response__get_packed_size($0) }, pack: { omx__health_response__pack($0, $1) },
        unpack: { omx__health_response__unpack($0, $1, $2) }, free: { omx__health_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try HealthResponse.codec.decode(bytes) { message in
            HealthResponse(
                service: cString(message.service), version: cString(message.version), nodeID: message.node_id,
                uptimeMs: message.uptime_ms, mapDigest: cString(message.map_digest), instance: message.instance,
                pid: message.pid)
        }
    }

    public func wire() -> [UInt8] {
        HealthResponse.codec.encode { message, arena in
            message.service = arena.string(service)
            message.version = arena.string(version)
            message.node_id = nodeID
            message.uptime_ms = uptimeMs
            message.map_digest = arena.string(mapDigest)
            message.instance = instance
            message.pid = pid
        }
    }
}
