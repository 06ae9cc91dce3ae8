import OMXProto


/// What one node says about one member (`omx.discovery.MemberUpdate`): the unit of gossip.
public struct MemberUpdate: Sendable, Equatable {
    public var nodeID: UInt32
    public var state: MemberState
    public var incarnation: UInt64
    public var mapDigest: String
    public var version: String
    public var registryVersion: UInt64
    public var services: [ServiceInstance]

    public init(
        nodeID: UInt32, state: MemberState, incarnation: UInt64, mapDigest: String, version: String,
        registryVersion: UInt64 = 0, services: [ServiceInstance] = []
    ) {
        self.nodeID = nodeID
        self.state = state
        self.incarnation = incarnation
        self.mapDigest = mapDigest
        self.version = version
        self.registryVersion = registryVersion
        self.services = services
    }

    static let codec = ProtoCodec<Omx__Discovery__MemberUpdate>(
        name: "omx.discovery.MemberUpdate", initialize: { omx__discovery__member_update__init($0) },
        packedSize: { omx__discovery__member_update__get_packed_size($0) }, pack: { omx__discovery__member_update__pack($0, $1) },
        unpack: { omx__discovery__member_update__unpack($0, $1, $2) },
        free: { omx__discovery__member_update__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Discovery__MemberUpdate> {
        let message = arena.message(MemberUpdate.codec)
        message.pointee.node_id = nodeID
        message.pointee.state = state.wire
        message.pointee.incarnation = incarnation
        message.pointee.map_digest = arena.string(mapDigest)
        message.pointee.version = arena.string(version)
        message.pointee.registry_version = registryVersion
        message.pointee.n_services = services.count
        message.pointee.services = ServiceInstance.wire(services, in: arena)
        return message
    }

    init(wire message: Omx__Discovery__MemberUpdate) {
        self.init(
            nodeID: message.node_id, state: MemberState(wire: message.state), incarnation: message.incarnation,
            mapDigest: cString(message.map_digest), version: cString(message.version),
            registryVersion: message.registry_version, services: ServiceInstance.from(message.n_services, message.services))
    }

    static func wire(_ updates: [MemberUpdate], in arena: CArena) -> UnsafeMutablePointer<UnsafeMutablePointer<Omx__Discovery__MemberUpdate>?> {
        let array = arena.array(of: UnsafeMutablePointer<Omx__Discovery__MemberUpdate>?.self, count: updates.count)
        for (index, update) in updates.enumerated() { array[index] = update.wire(in: arena) }
        return array
    }

    static func from(_ count: Int, _ array: UnsafeMutablePointer<UnsafeMutablePointer<Omx__Discovery__MemberUpdate>?>?) -> [MemberUpdate] {
        guard count > 0, let array else { return [] }
        return (0..<count).compactMap { array[$0].map { MemberUpdate(wire: $0.pointee) } }
    }
}

/// The failure detector's traffic (`omx.discovery.Gossip`): probes, probes through a helper,
/// and full-state syncs, all carrying member updates.
public struct Gossip: WireMessage, Equatable {
    public var fromNode: UInt32
    public var targetNode: UInt32
    public var updates: [MemberUpdate]
    public var timeoutMs: UInt32
    public var reached: Bool

    public init(fromNode: UInt32, targetNode: UInt32 = 0, updates: [MemberUpdate], timeoutMs: UInt32 = 0, reached: Bool = false) {
        self.fromNode = fromNode
        self.targetNode = targetNode
        self.updates = updates
        self.timeoutMs = timeoutMs
        self.reached = reached
    }

    static let codec = ProtoCodec<Omx__Discovery__Gossip>(
        name: "omx.discovery.Gossip", initialize: { omx__discovery__gossip__init($0) },
        packedSize: { omx__discovery__gossip__get_packed_size($0) }, pack: { omx__discovery__gossip__pack($0, $1) },
        unpack: { omx__discovery__gossip__unpack($0, $1, $2) }, free: { omx__discovery__gossip__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try Gossip.codec.decode(bytes) { message in
            Gossip(
                fromNode: message.from_node, targetNode: message.target_node,
                updates: MemberUpdate.from(message.n_updates, message.updates), timeoutMs: message.timeout_ms,
                reached: message.reached != 0)
        }
    }

    public func wire() -> [UInt8] {
        Gossip.codec.encode { message, arena in
            message.from_node = fromNode
            message.target_node = targetNode
            message.n_updates = updates.count
            message.updates = MemberUpdate.wire(updates, in: arena)
            message.timeout_ms = timeoutMs
            message.reached = reached ? 1 : 0
        }
    }
}
