import OMXProto


/// A member's state (`omx.discovery.MemberState`).
public enum MemberState: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    case left = 3
    case mismatch = 4

    /// "alive", "suspect", "dead", "left" or "mismatch".
    public var description: String {
        switch self {
        case .alive: return "alive"
        case .suspect: return "suspect"
        case .dead: return "dead"
        case .left: return "left"
        case .mismatch: return "mismatch"
        }
    }

    init(wire: Omx__Discovery__MemberState) {
        self = MemberState(rawValue: wire.rawValue) ?? .dead
    }

    var wire: Omx__Discovery__MemberState { Omx__Discovery__MemberState(rawValue: rawValue) }
}

/// A service instance registered with its node's Discovery (`omx.discovery.ServiceInstance`).
public struct ServiceInstance: Sendable, Equatable, Hashable {
    public var kind: String
    public var instance: UInt32
    public var nodeID: UInt32
    /// TCP address and port.
    public var address: String
    public var port: UInt32
    /// The Unix socket on the instance's node.
    public var unixPath: String
    public var pid: UInt32

    public init(kind: String, instance: UInt32, nodeID: UInt32, address: String, port: UInt32, unixPath: String, pid: UInt32) {
        self.kind = kind
        self.instance = instance
        self.nodeID = nodeID
        self.address = address
        self.port = port
        self.unixPath = unixPath
        self.pid = pid
    }

    static let codec = ProtoCodec<Omx__Discovery__ServiceInstance>(
        name: "omx.discovery.ServiceInstance", initialize: { omx__discovery__service_instance__init($0) },
        packedSize: { omx__discovery__service_instance__get_packed_size($0) }, pack: { omx__discovery__service_instance__pack($0, $1) },
        unpack: { omx__discovery__service_instance__unpack($0, $1, $2) },
        free: { omx__discovery__service_instance__free_unpacked($0, $1) })
    static let endpointCodec = ProtoCodec<Omx__Endpoint>(
        name: "omx.Endpoint", initialize: { omx__endpoint__init($0) }, packedSize: { omx__endpoint__get_packed_size($0) },
        pack: { omx__endpoint__pack($0, $1) }, unpack: { omx__endpoint__unpack($0, $1, $2) },
        free: { omx__endpoint__free_unpacked($0, $1) })

    /// A C message of this instance, allocated in `arena`.
    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Discovery__ServiceInstance> {
        let message = arena.message(ServiceInstance.codec)
        message.pointee.kind = arena.string(kind)
        message.pointee.instance = instance
        message.pointee.node_id = nodeID
        message.pointee.pid = pid
        let endpoint = arena.message(ServiceInstance.endpointCodec)
        endpoint.pointee.address = arena.string(address)
        endpoint.pointee.port = port
        endpoint.pointee.unix_path = arena.string(unixPath)
        message.pointee.endpoint = endpoint
        return message
    }

    init(wire message: Omx__Discovery__ServiceInstance) {
        let endpoint = message.endpoint?.pointee
        self.init(
            kind: cString(message.kind), instance: message.instance, nodeID: message.node_id,
            address: cString(endpoint?.address), port: endpoint?.port ?? 0, unixPath: cString(endpoint?.unix_path),
            pid: message.pid)
    }

    /// A C array of instances, for repeated fields.
    static func wire(_ instances: [ServiceInstance], in arena: CArena) -> UnsafeMutablePointer<UnsafeMutablePointer<Omx__Discovery__ServiceInstance>?> {
        let array = arena.array(of: UnsafeMutablePointer<Omx__Discovery__ServiceInstance>?.self, count: instances.count)
        for (index, instance) in instances.enumerated() { array[index] = instance.wire(in: arena) }
        return array
    }

    /// Instances from a C repeated field.
    static func from(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<Omx__Discovery__ServiceInstance>?>?) -> [ServiceInstance] {
        guard count > 0, let array else { return [] }
        return (0..<count).compactMap { array[$0].map { ServiceInstance(wire: $0.pointee) } }
    }
}
