import OMXProto

/// `omx.migrator.LastExecRequest`: where did this process of a job last exec? (`/mfs/lastexec`)
public struct LastExecRequest: WireMessage, Equatable {
    public var job: String
    /// The caller's pid inside the job's namespace, then its ancestors', up to the init (1).
    public var pids: [Int32]

    public init(job: String, pids: [Int32]) {
        self.job = job
        self.pids = pids
    }

    static let codec = ProtoCodec<Omx__Migrator__LastExecRequest>(
        name: "omx.migrator.LastExecRequest", initialize: { omx__migrator__last_exec_request__init($0) },
        packedSize: { omx__migrator__last_exec_request__get_packed_size($0) }, pack: { omx__migrator__last_exec_request__pack($0, $1) },
        unpack: { omx__migrator__last_exec_request__unpack($0, $1, $2) }, free: { omx__migrator__last_exec_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try LastExecRequest.codec.decode(bytes) { message in
            LastExecRequest(job: cString(message.job), pids: cValues(message.n_pids, message.pids))
        }
    }

    public func wire() -> [UInt8] {
        LastExecRequest.codec.encode { message, arena in
            message.job = arena.string(job)
            message.n_pids = pids.count
            message.pids = arena.values(pids)
        }
    }
}

/// `omx.migrator.LastExecResponse`: the node of the nearest exec.
public struct LastExecResponse: WireMessage, Equatable {
    public var node: UInt32

    public init(node: UInt32) { self.node = node }

    static let codec = ProtoCodec<Omx__Migrator__LastExecResponse>(
        name: "omx.migrator.LastExecResponse", initialize: { omx__migrator__last_exec_response__init($0) },
        packedSize: { omx__migrator__last_exec_response__get_packed_size($0) }, pack: { omx__migrator__last_exec_response__pack($0, $1) },
        unpack: { omx__migrator__last_exec_response__unpack($0, $1, $2) }, free: { omx__migrator__last_exec_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try LastExecResponse.codec.decode(bytes) { LastExecResponse(node: $0.node) } }
    public func wire() -> [UInt8] { LastExecResponse.codec.encode { message, _ in message.node = node } }
}
