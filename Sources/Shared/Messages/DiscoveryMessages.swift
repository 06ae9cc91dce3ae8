import OMXProto


/// A member as one node sees it (`omx.discovery.Member`).
public struct MemberView: Sendable, Equatable {
    public var id: UInt32
    public var address: String
    public var aliases: [String]
    /// What to show: `liveness`, or `.mismatch` for a node with another map or version.
    public var state: MemberState
    /// alive, suspect, dead or left, whatever the configuration.
    public var liveness: MemberState
    public var incarnation: UInt64
    public var mapDigest: String
    public var version: String
    /// Milliseconds since the Unix epoch when this node last heard from the member; 0: never.
    public var lastHeardMs: UInt64
    public var services: [ServiceInstance]
    /// For a mismatch: what differs.
    public var mismatch: String

    public init(
        id: UInt32, address: String, aliases: [String], state: MemberState, liveness: MemberState, incarnation: UInt64,
        mapDigest: String, version: String, lastHeardMs: UInt64, services: [ServiceInstance], mismatch: String
    ) {
        self.id = id
        self.address = address
        self.aliases = aliases
        self.state = state
        self.liveness = liveness
        self.incarnation = incarnation
        self.mapDigest = mapDigest
        self.version = version
        self.lastHeardMs = lastHeardMs
        self.services = services
        self.mismatch = mismatch
    }

    static let codec = ProtoCodec<Omx__Discovery__Member>(
        name: "omx.discovery.Member", initialize: { omx__discovery__member__init($0) },
        packedSize: { omx__discovery__member__get_packed_size($0) }, pack: { omx__discovery__member__pack($0, $1) },
        unpack: { omx__discovery__member__unpack($0, $1, $2) }, free: { omx__discovery__member__free_unpacked($0, $1) })
    static let nodeCodec = ProtoCodec<Omx__Node>(
        name: "omx.Node", initialize: { omx__node__init($0) }, packedSize: { omx__node__get_packed_size($0) },
        pack: { omx__node__pack($0, $1) }, unpack: { omx__node__unpack($0, $1, $2) }, free: { omx__node__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Discovery__Member> {
        let message = arena.message(MemberView.codec)
        let node = arena.message(MemberView.nodeCodec)
        node.pointee.id = id
        node.pointee.address = arena.string(address)
        node.pointee.n_aliases = aliases.count
        node.pointee.aliases = arena.strings(aliases)
        message.pointee.node = node
        message.pointee.state = state.wire
        message.pointee.liveness = liveness.wire
        message.pointee.incarnation = incarnation
        message.pointee.map_digest = arena.string(mapDigest)
        message.pointee.version = arena.string(version)
        message.pointee.last_heard_ms = lastHeardMs
        message.pointee.n_services = services.count
        message.pointee.services = ServiceInstance.wire(services, in: arena)
        message.pointee.mismatch = arena.string(mismatch)
        return message
    }

    init(wire message: Omx__Discovery__Member) {
        let node = message.node?.pointee
        self.init(
            id: node?.id ?? 0, address: cString(node?.address), aliases: cStrings(node?.n_aliases ?? 0, node?.aliases),
            state: MemberState(wire: message.state), liveness: MemberState(wire: message.liveness),
            incarnation: message.incarnation, mapDigest: cString(message.map_digest), version: cString(message.version),
            lastHeardMs: message.last_heard_ms, services: ServiceInstance.from(message.n_services, message.services),
            mismatch: cString(message.mismatch))
    }
}

/// `omx.discovery.MembersRequest`.
public struct MembersRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__Discovery__MembersRequest>(
        name: "omx.discovery.MembersRequest", initialize: { omx__discovery__members_request__init($0) },
        packedSize: { omx__discovery__members_request__get_packed_size($0) }, pack: { omx__discovery__members_request__pack($0, $1) },
        unpack: { omx__discovery__members_request__unpack($0, $1, $2) },
        free: { omx__discovery__members_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try MembersRequest.codec.decode(bytes) { _ in MembersRequest() } }
    public func wire() -> [UInt8] { MembersRequest.codec.encode { _, _ in } }
}

/// `omx.discovery.MembersResponse`: every member of the map as this node sees it.
public struct MembersResponse: WireMessage, Equatable {
    public var members: [MemberView]
    public var selfNode: UInt32
    public var change: UInt64

    public init(members: [MemberView], selfNode: UInt32, change: UInt64) {
        self.members = members
        self.selfNode = selfNode
        self.change = change
    }

    static let codec = ProtoCodec<Omx__Discovery__MembersResponse>(
        name: "omx.discovery.MembersResponse", initialize: { omx__discovery__members_response__init($0) },
        packedSize: { omx__discovery__members_response__get_packed_size($0) }, pack: { omx__discovery__members_response__pack($0, $1) },
        unpack: { omx__discovery__members_response__unpack($0, $1, $2) },
        free: { omx__discovery__members_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try MembersResponse.codec.decode(bytes) { message in
            let members = (0..<message.n_members).compactMap { message.members[$0].map { MemberView(wire: $0.pointee) } }
            return MembersResponse(members: members, selfNode: message.self_node, change: message.change)
        }
    }

    public func wire() -> [UInt8] {
        MembersResponse.codec.encode { message, arena in
            let array = arena.array(of: UnsafeMutablePointer<Omx__Discovery__Member>?.self, count: members.count)
            for (index, member) in members.enumerated() { array[index] = member.wire(in: arena) }
            message.n_members = members.count
            message.members = array
            message.self_node = selfNode
            message.change = change
        }
    }
}

/// `omx.discovery.WatchRequest`: wait for a membership change after `afterChange`.
public struct WatchRequest: WireMessage, Equatable {
    public var afterChange: UInt64
    public var timeoutMs: UInt32

    public init(afterChange: UInt64, timeoutMs: UInt32) {
        self.afterChange = afterChange
        self.timeoutMs = timeoutMs
    }

    static let codec = ProtoCodec<Omx__Discovery__WatchRequest>(
        name: "omx.discovery.WatchRequest", initialize: { omx__discovery__watch_request__init($0) },
        packedSize: { omx__discovery__watch_request__get_packed_size($0) }, pack: { omx__discovery__watch_request__pack($0, $1) },
        unpack: { omx__discovery__watch_request__unpack($0, $1, $2) },
        free: { omx__discovery__watch_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try WatchRequest.codec.decode(bytes) { WatchRequest(afterChange: $0.after_change, timeoutMs: $0.timeout_ms) }
    }

    public func wire() -> [UInt8] {
        WatchRequest.codec.encode { message, _ in
            message.after_change = afterChange
            message.timeout_ms = timeoutMs
        }
    }
}

/// `omx.discovery.ServiceLease`: Register, Renew and Deregister.
public struct ServiceLease: WireMessage, Equatable {
    public var instance: ServiceInstance
    public var leaseMs: UInt32

    public init(instance: ServiceInstance, leaseMs: UInt32) {
        self.instance = instance
        self.leaseMs = leaseMs
    }

    static let codec = ProtoCodec<Omx__Discovery__ServiceLease>(
        name: "omx.discovery.ServiceLease", initialize: { omx__discovery__service_lease__init($0) },
        packedSize: { omx__discovery__service_lease__get_packed_size($0) }, pack: { omx__discovery__service_lease__pack($0, $1) },
        unpack: { omx__discovery__service_lease__unpack($0, $1, $2) },
        free: { omx__discovery__service_lease__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ServiceLease.codec.decode(bytes) { message in
            guard let instance = message.instance else { throw RPCError(.invalidArgument, "ServiceLease without an instance") }
            return ServiceLease(instance: ServiceInstance(wire: instance.pointee), leaseMs: message.lease_ms)
        }
    }

    public func wire() -> [UInt8] {
        ServiceLease.codec.encode { message, arena in
            message.instance = instance.wire(in: arena)
            message.lease_ms = leaseMs
        }
    }
}

/// `omx.discovery.LookupRequest`: live instances of `kind`, on `nodeID` or anywhere (0).
public struct LookupRequest: WireMessage, Equatable {
    public var kind: String
    public var nodeID: UInt32

    public init(kind: String, nodeID: UInt32 = 0) {
        self.kind = kind
        self.nodeID = nodeID
    }

    static let codec = ProtoCodec<Omx__Discovery__LookupRequest>(
        name: "omx.discovery.LookupRequest", initialize: { omx__discovery__lookup_request__init($0) },
        packedSize: { omx__discovery__lookup_request__get_packed_size($0) }, pack: { omx__discovery__lookup_request__pack($0, $1) },
        unpack: { omx__discovery__lookup_request__unpack($0, $1, $2) },
        free: { omx__discovery__lookup_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try LookupRequest.codec.decode(bytes) { LookupRequest(kind: cString($0.kind), nodeID: $0.node_id) }
    }

    public func wire() -> [UInt8] {
        LookupRequest.codec.encode { message, arena in
            message.kind = arena.string(kind)
            message.node_id = nodeID
        }
    }
}

/// `omx.discovery.LookupResponse`.
public struct LookupResponse: WireMessage, Equatable {
    public var instances: [ServiceInstance]

    public init(instances: [ServiceInstance]) { self.instances = instances }

    static let codec = ProtoCodec<Omx__Discovery__LookupResponse>(
        name: "omx.discovery.LookupResponse", initialize: { omx__discovery__lookup_response__init($0) },
        packedSize: { omx__discovery__lookup_response__get_packed_size($0) }, pack: { omx__discovery__lookup_response__pack($0, $1) },
        unpack: { omx__discovery__lookup_response__unpack($0, $1, $2) },
        free: { omx__discovery__lookup_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try LookupResponse.codec.decode(bytes) { LookupResponse(instances: ServiceInstance.from($0.n_instances, $0.instances)) }
    }

    public func wire() -> [UInt8] {
        LookupResponse.codec.encode { message, arena in
            message.n_instances = instances.count
            message.instances = ServiceInstance.wire(instances, in: arena)
        }
    }
}

/// `omx.discovery.MapText`: GetMap and SetMap.
public struct MapText: WireMessage, Equatable {
    public var text: String
    public var source: String
    public var digest: String

    public init(text: String, source: String, digest: String = "") {
        self.text = text
        self.source = source
        self.digest = digest
    }

    static let codec = ProtoCodec<Omx__Discovery__MapText>(
        name: "omx.discovery.MapText", initialize: { omx__discovery__map_text__init($0) },
        packedSize: { omx__discovery__map_text__get_packed_size($0) }, pack: { omx__discovery__map_text__pack($0, $1) },
        unpack: { omx__discovery__map_text__unpack($0, $1, $2) }, free: { omx__discovery__map_text__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try MapText.codec.decode(bytes) { MapText(text: cString($0.text), source: cString($0.source), digest: cString($0.digest)) }
    }

    public func wire() -> [UInt8] {
        MapText.codec.encode { message, arena in
            message.text = arena.string(text)
            message.source = arena.string(source)
            message.digest = arena.string(digest)
        }
    }
}

/// `omx.discovery.Empty`.
public struct Empty: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__Discovery__Empty>(
        name: "omx.discovery.Empty", initialize: { omx__discovery__empty__init($0) },
        packedSize: { omx__discovery__empty__get_packed_size($0) }, pack: { omx__discovery__empty__pack($0, $1) },
        unpack: { omx__discovery__empty__unpack($0, $1, $2) }, free: { omx__discovery__empty__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try Empty.codec.decode(bytes) { _ in Empty() } }
    public func wire() -> [UInt8] { Empty.codec.encode { _, _ in } }
}
