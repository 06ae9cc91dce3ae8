import OMXProto

/// `omx.migrator.RunRequest`: start a job (openMosix's `mosrun`).
public struct RunRequest: WireMessage, Equatable {
    public var argv: [String]
    /// NAME=VALUE pairs.
    public var env: [String]
    public var cwd: String
    /// Where to start it; 0 = the called node.
    public var node: UInt32 = 0
    public var name = ""
    public var stay = false
    public var lock = false
    /// Honoured over TCP only: on the Unix socket the caller's credentials count.
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// Supplementary groups, honoured as `uid` is.
    public var groups: [UInt32] = []
    /// The job's nice value, honoured as `uid` is.
    public var nice: Int32 = 0

    public init(argv: [String], env: [String], cwd: String) {
        self.argv = argv
        self.env = env
        self.cwd = cwd
    }

    static let codec = ProtoCodec<Omx__Migrator__RunRequest>(
        name: "omx.migrator.RunRequest", initialize: { omx__migrator__run_request__init($0) },
        packedSize: { omx__migrator__run_request__get_packed_size($0) }, pack: { omx__migrator__run_request__pack($0, $1) },
        unpack: { omx__migrator__run_request__unpack($0, $1, $2) }, free: { omx__migrator__run_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try RunRequest.codec.decode(bytes) { message in
            var request = RunRequest(argv: cStrings(message.n_argv, message.argv), env: cStrings(message.n_env, message.env), cwd: cString(message.cwd))
            request.node = message.node
            request.name = cString(message.name)
            request.stay = message.stay != 0
            request.lock = message.lock != 0
            request.uid = message.uid
            request.gid = message.gid
            request.groups = cValues(message.n_groups, message.groups)
            request.nice = message.nice
            return request
        }
    }

    public func wire() -> [UInt8] {
        RunRequest.codec.encode { message, arena in
            message.n_argv = argv.count
            message.argv = arena.strings(argv)
            message.n_env = env.count
            message.env = arena.strings(env)
            message.cwd = arena.string(cwd)
            message.node = node
            message.name = arena.string(name)
            message.stay = stay ? 1 : 0
            message.lock = lock ? 1 : 0
            message.uid = uid
            message.gid = gid
            message.n_groups = groups.count
            message.groups = arena.values(groups)
            message.nice = nice
        }
    }
}

/// `omx.migrator.StartRequest`: a job's home asks a node to start the job there.
public struct StartRequest: WireMessage, Equatable {
    public var job: Job

    public init(job: Job) { self.job = job }

    static let codec = ProtoCodec<Omx__Migrator__StartRequest>(
        name: "omx.migrator.StartRequest", initialize: { omx__migrator__start_request__init($0) },
        packedSize: { omx__migrator__start_request__get_packed_size($0) }, pack: { omx__migrator__start_request__pack($0, $1) },
        unpack: { omx__migrator__start_request__unpack($0, $1, $2) }, free: { omx__migrator__start_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try StartRequest.codec.decode(bytes) { message in
            guard let job = message.job else { throw RPCError(.invalidArgument, "StartRequest without a job") }
            return StartRequest(job: Job(wire: job.pointee))
        }
    }

    public func wire() -> [UInt8] { StartRequest.codec.encode { message, arena in message.job = job.wire(in: arena) } }
}

/// `omx.migrator.ListJobsRequest`: this node's jobs, or with `cluster` every node's.
public struct ListJobsRequest: WireMessage, Equatable {
    public var cluster: Bool

    public init(cluster: Bool) { self.cluster = cluster }

    static let codec = ProtoCodec<Omx__Migrator__ListJobsRequest>(
        name: "omx.migrator.ListJobsRequest", initialize: { omx__migrator__list_jobs_request__init($0) },
        packedSize: { omx__migrator__list_jobs_request__get_packed_size($0) }, pack: { omx__migrator__list_jobs_request__pack($0, $1) },
        unpack: { omx__migrator__list_jobs_request__unpack($0, $1, $2) }, free: { omx__migrator__list_jobs_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try ListJobsRequest.codec.decode(bytes) { ListJobsRequest(cluster: $0.cluster != 0) } }
    public func wire() -> [UInt8] { ListJobsRequest.codec.encode { message, _ in message.cluster = cluster ? 1 : 0 } }
}

/// `omx.migrator.ListJobsResponse`: jobs, and the nodes that did not answer a cluster listing.
public struct ListJobsResponse: WireMessage, Equatable {
    public var jobs: [Job]
    public var unreachable: [UInt32]

    public init(jobs: [Job], unreachable: [UInt32] = []) {
        self.jobs = jobs
        self.unreachable = unreachable
    }

    static let codec = ProtoCodec<Omx__Migrator__ListJobsResponse>(
        name: "omx.migrator.ListJobsResponse", initialize: { omx__migrator__list_jobs_response__init($0) },
        packedSize: { omx__migrator__list_jobs_response__get_packed_size($0) }, pack: { omx__migrator__list_jobs_response__pack($0, $1) },
        unpack: { omx__migrator__list_jobs_response__unpack($0, $1, $2) }, free: { omx__migrator__list_jobs_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ListJobsResponse.codec.decode(bytes) { message in
            let unreachable = cValues(message.n_unreachable, message.unreachable)
            return ListJobsResponse(jobs: Job.list(message.n_jobs, message.jobs), unreachable: unreachable)
        }
    }

    public func wire() -> [UInt8] {
        ListJobsResponse.codec.encode { message, arena in
            message.n_jobs = jobs.count
            message.jobs = Job.wire(jobs, in: arena)
            message.n_unreachable = unreachable.count
            message.unreachable = arena.values(unreachable)
        }
    }
}

/// `omx.migrator.KillRequest`: signal a job wherever it runs.
public struct KillRequest: WireMessage, Equatable {
    public var job: String
    /// 0 = SIGTERM.
    public var signal: Int32

    public init(job: String, signal: Int32) {
        self.job = job
        self.signal = signal
    }

    static let codec = ProtoCodec<Omx__Migrator__KillRequest>(
        name: "omx.migrator.KillRequest", initialize: { omx__migrator__kill_request__init($0) },
        packedSize: { omx__migrator__kill_request__get_packed_size($0) }, pack: { omx__migrator__kill_request__pack($0, $1) },
        unpack: { omx__migrator__kill_request__unpack($0, $1, $2) }, free: { omx__migrator__kill_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try KillRequest.codec.decode(bytes) { KillRequest(job: cString($0.job), signal: $0.signal) }
    }

    public func wire() -> [UInt8] {
        KillRequest.codec.encode { message, arena in
            message.job = arena.string(job)
            message.signal = signal
        }
    }
}

/// `omx.migrator.WaitRequest`: wait up to `timeoutMs` for a job to end.
public struct WaitRequest: WireMessage, Equatable {
    public var job: String
    public var timeoutMs: UInt32

    public init(job: String, timeoutMs: UInt32) {
        self.job = job
        self.timeoutMs = timeoutMs
    }

    static let codec = ProtoCodec<Omx__Migrator__WaitRequest>(
        name: "omx.migrator.WaitRequest", initialize: { omx__migrator__wait_request__init($0) },
        packedSize: { omx__migrator__wait_request__get_packed_size($0) }, pack: { omx__migrator__wait_request__pack($0, $1) },
        unpack: { omx__migrator__wait_request__unpack($0, $1, $2) }, free: { omx__migrator__wait_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try WaitRequest.codec.decode(bytes) { WaitRequest(job: cString($0.job), timeoutMs: $0.timeout_ms) }
    }

    public func wire() -> [UInt8] {
        WaitRequest.codec.encode { message, arena in
            message.job = arena.string(job)
            message.timeout_ms = timeoutMs
        }
    }
}

/// `omx.migrator.ReadLogRequest`: a job's stdout or stderr from `offset`.
public struct ReadLogRequest: WireMessage, Equatable {
    public var job: String
    /// "stdout" or "stderr".
    public var stream: String
    public var offset: UInt64
    public var maxBytes: UInt32

    public init(job: String, stream: String, offset: UInt64, maxBytes: UInt32) {
        self.job = job
        self.stream = stream
        self.offset = offset
        self.maxBytes = maxBytes
    }

    static let codec = ProtoCodec<Omx__Migrator__ReadLogRequest>(
        name: "omx.migrator.ReadLogRequest", initialize: { omx__migrator__read_log_request__init($0) },
        packedSize: { omx__migrator__read_log_request__get_packed_size($0) }, pack: { omx__migrator__read_log_request__pack($0, $1) },
        unpack: { omx__migrator__read_log_request__unpack($0, $1, $2) }, free: { omx__migrator__read_log_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ReadLogRequest.codec.decode(bytes) {
            ReadLogRequest(job: cString($0.job), stream: cString($0.stream), offset: $0.offset, maxBytes: $0.max_bytes)
        }
    }

    public func wire() -> [UInt8] {
        ReadLogRequest.codec.encode { message, arena in
            message.job = arena.string(job)
            message.stream = arena.string(stream)
            message.offset = offset
            message.max_bytes = maxBytes
        }
    }
}

/// `omx.migrator.ReadLogResponse`.
public struct ReadLogResponse: WireMessage, Equatable {
    public var data: [UInt8]
    /// The file's size now.
    public var size: UInt64
    /// The job has ended: nothing more will come after `size`.
    public var ended: Bool

    public init(data: [UInt8], size: UInt64, ended: Bool) {
        self.data = data
        self.size = size
        self.ended = ended
    }

    static let codec = ProtoCodec<Omx__Migrator__ReadLogResponse>(
        name: "omx.migrator.ReadLogResponse", initialize: { omx__migrator__read_log_response__init($0) },
        packedSize: { omx__migrator__read_log_response__get_packed_size($0) }, pack: { omx__migrator__read_log_response__pack($0, $1) },
        unpack: { omx__migrator__read_log_response__unpack($0, $1, $2) }, free: { omx__migrator__read_log_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ReadLogResponse.codec.decode(bytes) { ReadLogResponse(data: cBytes($0.data), size: $0.size, ended: $0.ended != 0) }
    }

    public func wire() -> [UInt8] {
        ReadLogResponse.codec.encode { message, arena in
            message.data = arena.bytes(data)
            message.size = size
            message.ended = ended ? 1 : 0
        }
    }
}

/// `omx.migrator.MigrateRequest`: move a job to `target` (0 = its home).
public struct MigrateRequest: WireMessage, Equatable {
    public var job: String
    public var target: UInt32

    public init(job: String, target: UInt32) {
        self.job = job
        self.target = target
    }

    static let codec = ProtoCodec<Omx__Migrator__MigrateRequest>(
        name: "omx.migrator.MigrateRequest", initialize: { omx__migrator__migrate_request__init($0) },
        packedSize: { omx__migrator__migrate_request__get_packed_size($0) }, pack: { omx__migrator__migrate_request__pack($0, $1) },
        unpack: { omx__migrator__migrate_request__unpack($0, $1, $2) }, free: { omx__migrator__migrate_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try MigrateRequest.codec.decode(bytes) { MigrateRequest(job: cString($0.job), target: $0.target) }
    }

    public func wire() -> [UInt8] {
        MigrateRequest.codec.encode { message, arena in
            message.job = arena.string(job)
            message.target = target
        }
    }
}

/// `omx.migrator.MigrateResponse`: the job where it now is, and what moving it took.
public struct MigrateResponse: WireMessage, Equatable {
    public var job: Job
    public var report: MigrationReport

    public init(job: Job, report: MigrationReport) {
        self.job = job
        self.report = report
    }

    static let codec = ProtoCodec<Omx__Migrator__MigrateResponse>(
        name: "omx.migrator.MigrateResponse", initialize: { omx__migrator__migrate_response__init($0) },
        packedSize: { omx__migrator__migrate_response__get_packed_size($0) }, pack: { omx__migrator__migrate_response__pack($0, $1) },
        unpack: { omx__migrator__migrate_response__unpack($0, $1, $2) }, free: { omx__migrator__migrate_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try MigrateResponse.codec.decode(bytes) { message in
            guard let job = message.job, let report = message.report else { throw RPCError(.invalidArgument, "MigrateResponse without a job or report") }
            return MigrateResponse(job: Job(wire: job.pointee), report: MigrationReport(wire: report.pointee))
        }
    }

    public func wire() -> [UInt8] {
        MigrateResponse.codec.encode { message, arena in
            message.job = job.wire(in: arena)
            message.report = report.wire(in: arena)
        }
    }
}

/// `omx.migrator.ExpelRequest`: send every guest job away.
public struct ExpelRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__Migrator__ExpelRequest>(
        name: "omx.migrator.ExpelRequest", initialize: { omx__migrator__expel_request__init($0) },
        packedSize: { omx__migrator__expel_request__get_packed_size($0) }, pack: { omx__migrator__expel_request__pack($0, $1) },
        unpack: { omx__migrator__expel_request__unpack($0, $1, $2) }, free: { omx__migrator__expel_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try ExpelRequest.codec.decode(bytes) { _ in ExpelRequest() } }
    public func wire() -> [UInt8] { ExpelRequest.codec.encode { _, _ in } }
}

/// `omx.migrator.ExpelResponse`: "JOB -> NODE" for each job moved, "JOB: why" for each that stayed.
public struct ExpelResponse: WireMessage, Equatable {
    public var moved: [String]
    public var failed: [String]

    public init(moved: [String], failed: [String]) {
        self.moved = moved
        self.failed = failed
    }

    static let codec = ProtoCodec<Omx__Migrator__ExpelResponse>(
        name: "omx.migrator.ExpelResponse", initialize: { omx__migrator__expel_response__init($0) },
        packedSize: { omx__migrator__expel_response__get_packed_size($0) }, pack: { omx__migrator__expel_response__pack($0, $1) },
        unpack: { omx__migrator__expel_response__unpack($0, $1, $2) }, free: { omx__migrator__expel_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ExpelResponse.codec.decode(bytes) { ExpelResponse(moved: cStrings($0.n_moved, $0.moved), failed: cStrings($0.n_failed, $0.failed)) }
    }

    public func wire() -> [UInt8] {
        ExpelResponse.codec.encode { message, arena in
            message.n_moved = moved.count
            message.moved = arena.strings(moved)
            message.n_failed = failed.count
            message.failed = arena.strings(failed)
        }
    }
}

/// `omx.migrator.BringRequest`: bring this home's jobs home.
public struct BringRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__Migrator__BringRequest>(
        name: "omx.migrator.BringRequest", initialize: { omx__migrator__bring_request__init($0) },
        packedSize: { omx__migrator__bring_request__get_packed_size($0) }, pack: { omx__migrator__bring_request__pack($0, $1) },
        unpack: { omx__migrator__bring_request__unpack($0, $1, $2) }, free: { omx__migrator__bring_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws { self = try BringRequest.codec.decode(bytes) { _ in BringRequest() } }
    public func wire() -> [UInt8] { BringRequest.codec.encode { _, _ in } }
}

/// `omx.migrator.FlagsRequest`: lock/unlock or stay/nostay one job (nil leaves a flag alone).
public struct FlagsRequest: WireMessage, Equatable {
    public var job: String
    public var lock: Bool?
    public var stay: Bool?

    public init(job: String, lock: Bool? = nil, stay: Bool? = nil) {
        self.job = job
        self.lock = lock
        self.stay = stay
    }

    static let codec = ProtoCodec<Omx__Migrator__FlagsRequest>(
        name: "omx.migrator.FlagsRequest", initialize: { omx__migrator__flags_request__init($0) },
        packedSize: { omx__migrator__flags_request__get_packed_size($0) }, pack: { omx__migrator__flags_request__pack($0, $1) },
        unpack: { omx__migrator__flags_request__unpack($0, $1, $2) }, free: { omx__migrator__flags_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try FlagsRequest.codec.decode(bytes) { message in
            FlagsRequest(
                job: cString(message.job), lock: message.set_lock != 0 ? message.lock != 0 : nil,
                stay: message.set_stay != 0 ? message.stay != 0 : nil)
        }
    }

    public func wire() -> [UInt8] {
        FlagsRequest.codec.encode { message, arena in
            message.job = arena.string(job)
            message.set_lock = lock == nil ? 0 : 1
            message.lock = lock == true ? 1 : 0
            message.set_stay = stay == nil ? 0 : 1
            message.stay = stay == true ? 1 : 0
        }
    }
}
