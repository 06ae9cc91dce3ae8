import OMXProto

/// A node's policies, set with `omx mosctl` (openMosix's names; `omx.balancer.Policy`).
public struct NodePolicy: Sendable, Equatable {
    /// No job running here moves automatically.
    public var stay = false
    /// This node's own jobs stay; guests may go.
    public var lstay = false
    /// No guest may arrive.
    public var block = false
    /// Neither send nor receive load: the node takes no part in balancing.
    public var quiet = false

    public init(stay: Bool = false, lstay: Bool = false, block: Bool = false, quiet: Bool = false) {
        self.stay = stay
        self.lstay = lstay
        self.block = block
        self.quiet = quiet
    }

    /// "stay, block" or "-".
    public var description: String {
        let set = [(stay, "stay"), (lstay, "lstay"), (block, "block"), (quiet, "quiet")].filter(\.0).map(\.1)
        return set.isEmpty ? "-" : set.joined(separator: ",")
    }
}

/// One node's load as it reports it (`omx.balancer.LoadRecord`).
public struct NodeLoad: WireMessage, Equatable {
    public var node: UInt32
    /// Runnable processes, smoothed: the CPU demand on the node.
    public var load: Double
    public var cpus: UInt32
    /// Relative speed; 1000 is the reference CPU (`mosctl setspeed`).
    public var speed: UInt32
    public var freeMemory: UInt64
    public var totalMemory: UInt64
    public var policy: NodePolicy
    /// Jobs running on the node.
    public var jobs: UInt32
    /// When the record was sampled (Unix epoch ms).
    public var sampledMs: UInt64

    public init(
        node: UInt32, load: Double, cpus: UInt32, speed: UInt32, freeMemory: UInt64, totalMemory: UInt64,
        policy: NodePolicy = NodePolicy(), jobs: UInt32 = 0, sampledMs: UInt64 = 0
    ) {
        self.node = node
        self.load = load
        self.cpus = cpus
        self.speed = speed
        self.freeMemory = freeMemory
        self.totalMemory = totalMemory
        self.policy = policy
        self.jobs = jobs
        self.sampledMs = sampledMs
    }

    /// CPUs in reference-CPU units.
    public var capacity: Double { Double(max(cpus, 1)) * Double(max(speed, 1)) / 1000 }

    /// Demand per unit of capacity: 1.0 means every CPU is busy.
    public var normalizedLoad: Double { load / capacity }

    /// The normalized load with `demand` more (or less, when negative).
    public func normalizedLoad(adding demand: Double) -> Double { max(0, load + demand) / capacity }

    static let codec = ProtoCodec<Omx__Balancer__LoadRecord>(
        name: "omx.balancer.LoadRecord", initialize: { omx__balancer__load_record__init($0) },
        packedSize: { omx__balancer__load_record__get_packed_size($0) }, pack: { omx__balancer__load_record__pack($0, $1) },
        unpack: { omx__balancer__load_record__unpack($0, $1, $2) }, free: { omx__balancer__load_record__free_unpacked($0, $1) })
    static let policyCodec = ProtoCodec<Omx__Balancer__Policy>(
        name: "omx.balancer.Policy", initialize: { omx__balancer__policy__init($0) },
        packedSize: { omx__balancer__policy__get_packed_size($0) }, pack: { omx__balancer__policy__pack($0, $1) },
        unpack: { omx__balancer__policy__unpack($0, $1, $2) }, free: { omx__balancer__policy__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Balancer__LoadRecord> {
        let message = arena.message(NodeLoad.codec)
        let policy = arena.message(NodeLoad.policyCodec)
        policy.pointee.stay = self.policy.stay ? 1 : 0
        policy.pointee.lstay = self.policy.lstay ? 1 : 0
        policy.pointee.block = self.policy.block ? 1 : 0
        policy.pointee.quiet = self.policy.quiet ? 1 : 0
        message.pointee.node_id = node
        message.pointee.load = load
        message.pointee.cpus = cpus
        message.pointee.speed = speed
        message.pointee.free_memory = freeMemory
        message.pointee.total_memory = totalMemory
        message.pointee.policy = policy
        message.pointee.jobs = jobs
        message.pointee.sampled_ms = sampledMs
        return message
    }

    init(wire message: Omx__Balancer__LoadRecord) {
        let policy = message.policy?.pointee
        self.init(
            node: message.node_id, load: message.load, cpus: message.cpus, speed: message.speed, freeMemory: message.free_memory,
            totalMemory: message.total_memory,
            policy: NodePolicy(stay: policy?.stay ?? 0 != 0, lstay: policy?.lstay ?? 0 != 0, block: policy?.block ?? 0 != 0, quiet: policy?.quiet ?? 0 != 0),
            jobs: message.jobs, sampledMs: message.sampled_ms)
    }

    public init(wire bytes: [UInt8]) throws { self = try NodeLoad.codec.decode(bytes) { NodeLoad(wire: $0) } }
    public func wire() -> [UInt8] { NodeLoad.codec.encode { message, arena in message = wire(in: arena).pointee } }
}

/// `omx.balancer.GetLoadRequest`.
public struct GetLoadRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__Balancer__GetLoadRequest>(
        name: "omx.balancer.GetLoadRequest", initialize: { omx__balancer__get_load_request__init($0) },
        packedSize: { omx__balancer__get_load_request__get_packed_size($0) }, pack: { omx__balancer__get_load_request__pack($0, $1) },
        unpack: { omx__balancer__get_load_request__unpack($0, $1, $2) }, free: { omx__balancer__get_load_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try GetLoadRequest.codec.decode(bytes) { _ in GetLoadRequest() } }
    public func wire() -> [UInt8] { GetLoadRequest.codec.encode { _, _ in } }
}

/// `omx.balancer.GetLoadResponse`: a node's load, policy and latest decisions.
public struct GetLoadResponse: WireMessage, Equatable {
    public var load: NodeLoad
    /// Newest last.
    public var decisions: [String]
    public var peersKnown: UInt32

    public init(load: NodeLoad, decisions: [String], peersKnown: UInt32) {
        self.load = load
        self.decisions = decisions
        self.peersKnown = peersKnown
    }

    static let codec = ProtoCodec<Omx__Balancer__GetLoadResponse>(
        name: "omx.balancer.GetLoadResponse", initialize: { omx__balancer__get_load_response__init($0) },
        packedSize: { omx__balancer__get_load_response__get_packed_size($0) }, pack: { omx__balancer__get_load_response__pack($0, $1) },
        unpack: { omx__balancer__get_load_response__unpack($0, $1, $2) }, free: { omx__balancer__get_load_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try GetLoadResponse.codec.decode(bytes) { message in
            guard let load = message.load else { throw RPCError(.invalidArgument, "GetLoadResponse without a load") }
            return GetLoadResponse(load: NodeLoad(wire: load.pointee), decisions: cStrings(message.n_decisions, message.decisions), peersKnown: message.peers_known)
        }
    }

    public func wire() -> [UInt8] {
        GetLoadResponse.codec.encode { message, arena in
            message.load = load.wire(in: arena)
            message.n_decisions = decisions.count
            message.decisions = arena.strings(decisions)
            message.peers_known = peersKnown
        }
    }
}

/// `omx.balancer.ClusterLoadRequest`.
public struct ClusterLoadRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__Balancer__ClusterLoadRequest>(
        name: "omx.balancer.ClusterLoadRequest", initialize: { omx__balancer__cluster_load_request__init($0) },
        packedSize: { omx__balancer__cluster_load_request__get_packed_size($0) }, pack: { omx__balancer__cluster_load_request__pack($0, $1) },
        unpack: { omx__balancer__cluster_load_request__unpack($0, $1, $2) }, free: { omx__balancer__cluster_load_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try ClusterLoadRequest.codec.decode(bytes) { _ in ClusterLoadRequest() } }
    public func wire() -> [UInt8] { ClusterLoadRequest.codec.encode { _, _ in } }
}

/// `omx.balancer.ClusterLoadResponse`: every node's own record, and who did not answer.
public struct ClusterLoadResponse: WireMessage, Equatable {
    public var nodes: [NodeLoad]
    public var unreachable: [UInt32]

    public init(nodes: [NodeLoad], unreachable: [UInt32]) {
        self.nodes = nodes
        self.unreachable = unreachable
    }

    static let codec = ProtoCodec<Omx__Balancer__ClusterLoadResponse>(
        name: "omx.balancer.ClusterLoadResponse", initialize: { omx__balancer__cluster_load_response__init($0) },
        packedSize: { omx__balancer__cluster_load_response__get_packed_size($0) }, pack: { omx__balancer__cluster_load_response__pack($0, $1) },
        unpack: { omx__balancer__cluster_load_response__unpack($0, $1, $2) }, free: { omx__balancer__cluster_load_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ClusterLoadResponse.codec.decode(bytes) { message in
            let nodes = (0..<message.n_nodes).compactMap { message.nodes[$0].map { NodeLoad(wire: $0.pointee) } }
            return ClusterLoadResponse(nodes: nodes, unreachable: cValues(message.n_unreachable, message.unreachable))
        }
    }

    public func wire() -> [UInt8] {
        ClusterLoadResponse.codec.encode { message, arena in
            let array = arena.array(of: UnsafeMutablePointer<Omx__Balancer__LoadRecord>?.self, count: nodes.count)
            for (index, node) in nodes.enumerated() { array[index] = node.wire(in: arena) }
            message.n_nodes = nodes.count
            message.nodes = array
            message.n_unreachable = unreachable.count
            message.unreachable = arena.values(unreachable)
        }
    }
}

/// `omx.balancer.ControlRequest`: one `omx mosctl` action.
public struct ControlRequest: WireMessage, Equatable {
    public var action: String
    public var speed: UInt32

    public init(action: String, speed: UInt32 = 0) {
        self.action = action
        self.speed = speed
    }

    static let codec = ProtoCodec<Omx__Balancer__ControlRequest>(
        name: "omx.balancer.ControlRequest", initialize: { omx__balancer__control_request__init($0) },
        packedSize: { omx__balancer__control_request__get_packed_size($0) }, pack: { omx__balancer__control_request__pack($0, $1) },
        unpack: { omx__balancer__control_request__unpack($0, $1, $2) }, free: { omx__balancer__control_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ControlRequest.codec.decode(bytes) { ControlRequest(action: cString($0.action), speed: $0.speed) }
    }

    public func wire() -> [UInt8] {
        ControlRequest.codec.encode { message, arena in
            message.action = arena.string(action)
            message.speed = speed
        }
    }
}

/// `omx.balancer.ControlResponse`: the node's record after the action, and what was done.
public struct ControlResponse: WireMessage, Equatable {
    public var load: NodeLoad
    public var message: String

    public init(load: NodeLoad, message: String) {
        self.load = load
        self.message = message
    }

    static let codec = ProtoCodec<Omx__Balancer__ControlResponse>(
        name: "omx.balancer.ControlResponse", initialize: { omx__balancer__control_response__init($0) },
        packedSize: { omx__balancer__control_response__get_packed_size($0) }, pack: { omx__balancer__control_response__pack($0, $1) },
        unpack: { omx__balancer__control_response__unpack($0, $1, $2) }, free: { omx__balancer__control_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ControlResponse.codec.decode(bytes) { message in
            guard let load = message.load else { throw RPCError(.invalidArgument, "ControlResponse without a load") }
            return ControlResponse(load: NodeLoad(wire: load.pointee), message: cString(message.message))
        }
    }

    public func wire() -> [UInt8] {
        ControlResponse.codec.encode { message, arena in
            message.load = load.wire(in: arena)
            message.message = arena.string(self.message)
        }
    }
}

/// `omx.balancer.PlaceRequest`: where should a new job of `demand` start?
public struct PlaceRequest: WireMessage, Equatable {
    public var demand: Double

    public init(demand: Double) { self.demand = demand }

    static let codec = ProtoCodec<Omx__Balancer__PlaceRequest>(
        name: "omx.balancer.PlaceRequest", initialize: { omx__balancer__place_request__init($0) },
        packedSize: { omx__balancer__place_request__get_packed_size($0) }, pack: { omx__balancer__place_request__pack($0, $1) },
        unpack: { omx__balancer__place_request__unpack($0, $1, $2) }, free: { omx__balancer__place_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try PlaceRequest.codec.decode(bytes) { PlaceRequest(demand: $0.demand) } }
    public func wire() -> [UInt8] { PlaceRequest.codec.encode { message, _ in message.demand = demand } }
}

/// `omx.balancer.PlaceResponse`: the node to start it on, and why.
public struct PlaceResponse: WireMessage, Equatable {
    public var node: UInt32
    public var reason: String

    public init(node: UInt32, reason: String) {
        self.node = node
        self.reason = reason
    }

    static let codec = ProtoCodec<Omx__Balancer__PlaceResponse>(
        name: "omx.balancer.PlaceResponse", initialize: { omx__balancer__place_response__init($0) },
        packedSize: { omx__balancer__place_response__get_packed_size($0) }, pack: { omx__balancer__place_response__pack($0, $1) },
        unpack: { omx__balancer__place_response__unpack($0, $1, $2) }, free: { omx__balancer__place_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try PlaceResponse.codec.decode(bytes) { PlaceResponse(node: $0.node, reason: cString($0.reason)) } }

    public func wire() -> [UInt8] {
        PlaceResponse.codec.encode { message, arena in
            message.node = node
            message.reason = arena.string(reason)
        }
    }
}
