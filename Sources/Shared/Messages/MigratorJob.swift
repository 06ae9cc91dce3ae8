import OMXProto

/// Where a job is in its life (`omx.migrator.JobState`).
public enum JobState: String, Sendable, Equatable {
    case starting, running, migrating, exited

    var wire: Omx__Migrator__JobState {
        switch self {
        case .running: return OMX__MIGRATOR__JOB_STATE__RUNNING
        case .migrating: return OMX__MIGRATOR__JOB_STATE__MIGRATING
        case .exited: return OMX__MIGRATOR__JOB_STATE__EXITED
        case .starting: return OMX__MIGRATOR__JOB_STATE__STARTING
        }
    }

    init(wire: Omx__Migrator__JobState) {
        switch wire {
        case OMX__MIGRATOR__JOB_STATE__MIGRATING: self = .migrating
        case OMX__MIGRATOR__JOB_STATE__EXITED: self = .exited
        case OMX__MIGRATOR__JOB_STATE__STARTING: self = .starting
        default: self = .running
        }
    }
}

/// What one migration took (`omx.migrator.MigrationReport`).
public struct MigrationReport: Sendable, Equatable {
    public var from: UInt32 = 0
    public var to: UInt32 = 0
    /// How long the job was stopped.
    public var freezeMs: UInt64 = 0
    public var totalMs: UInt64 = 0
    /// Image bytes sent.
    public var bytes: UInt64 = 0
    /// "stop-and-copy" or "pre-copy".
    public var mode = ""
    /// Pre-copy rounds before the final freeze.
    public var rounds: UInt32 = 0

    public init() {}

    static let codec = ProtoCodec<Omx__Migrator__MigrationReport>(
        name: "omx.migrator.MigrationReport", initialize: { omx__migrator__migration_report__init($0) },
        packedSize: { omx__migrator__migration_report__get_packed_size($0) }, pack: { omx__migrator__migration_report__pack($0, $1) },
        unpack: { omx__migrator__migration_report__unpack($0, $1, $2) },
        free: { omx__migrator__migration_report__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Migrator__MigrationReport> {
        let message = arena.message(MigrationReport.codec)
        message.pointee.from = from
        message.pointee.to = to
        message.pointee.freeze_ms = freezeMs
        message.pointee.total_ms = totalMs
        message.pointee.bytes = bytes
        message.pointee.mode = arena.string(mode)
        message.pointee.rounds = rounds
        return message
    }

    init(wire message: Omx__Migrator__MigrationReport) {
        from = message.from
        to = message.to
        freezeMs = message.freeze_ms
        totalMs = message.total_ms
        bytes = message.bytes
        mode = cString(message.mode)
        rounds = message.rounds
    }
}

/// One job (`omx.migrator.Job`): a process tree in a PID namespace of its own that can move
/// between nodes. Its id is "<home>.<n>".
public struct Job: WireMessage, Equatable {
    public var id = ""
    public var home: UInt32 = 0
    public var `where`: UInt32 = 0
    /// Host pid of the job's namespace init on `where`.
    public var pid: Int32 = 0
    public var state = JobState.starting
    public var argv: [String] = []
    public var name = ""
    /// The directory with stdout, stderr and status (the same path on every node).
    public var spool = ""
    public var startedMs: UInt64 = 0
    /// When exited: "exit N", "signal N" or "lost: <why>".
    public var exit = ""
    public var cpuPercent = 0.0
    public var rssBytes: UInt64 = 0
    /// Why the job cannot migrate now; empty when it can.
    public var cantmove = ""
    public var stay = false
    public var lock = false
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    /// The supplementary groups its command runs with (besides `gid`).
    public var groups: [UInt32] = []
    /// The nice value its command starts with.
    public var nice: Int32 = 0
    public var cwd = ""
    public var env: [String] = []
    public var migrations: UInt32 = 0
    public var lastMigration: MigrationReport?
    /// The init's start time in clock ticks after boot (/proc/PID/stat field 22), which tells
    /// the job's process from a later one that reuses its pid.
    public var pidStartTicks: UInt64 = 0
    /// While migrating: the migration under way.
    public var transfer = ""
    /// While migrating: the target (on the source) or the source (on the target).
    public var peer: UInt32 = 0
    /// When it started on, or last arrived at, `where` (Unix epoch ms).
    public var arrivedMs: UInt64 = 0
    /// Runnable threads, smoothed: the CPU the job asks for (1 = one busy thread).
    public var demand = 0.0
    /// The node where the job's command was started (its first exec); 0 in records written
    /// before this was kept.
    public var startedOn: UInt32 = 0
    /// Where its processes exec'd since it started, by pid inside the job's namespace.
    public var execNodes: [Int32: UInt32] = [:]
    /// While migrating: its processes (pids in its namespace) that were stopped before the
    /// checkpoint, which stay stopped after it.
    public var stoppedPIDs: [UInt32] = []

    public init() {}

    static let codec = ProtoCodec<Omx__Migrator__Job>(
        name: "omx.migrator.Job", initialize: { omx__migrator__job__init($0) },
        packedSize: { omx__migrator__job__get_packed_size($0) }, pack: { omx__migrator__job__pack($0, $1) },
        unpack: { omx__migrator__job__unpack($0, $1, $2) }, free: { omx__migrator__job__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Migrator__Job> {
        let message = arena.message(Job.codec)
        message.pointee.id = arena.string(id)
        message.pointee.home = home
        message.pointee.where = `where`
        message.pointee.pid = pid
        message.pointee.state = state.wire
        message.pointee.n_argv = argv.count
        message.pointee.argv = arena.strings(argv)
        message.pointee.name = arena.string(name)
        message.pointee.spool = arena.string(spool)
        message.pointee.started_ms = startedMs
        message.pointee.exit = arena.string(exit)
        message.pointee.cpu_percent = cpuPercent
        message.pointee.rss_bytes = rssBytes
        message.pointee.cantmove = arena.string(cantmove)
        message.pointee.stay = stay ? 1 : 0
        message.pointee.lock = lock ? 1 : 0
        message.pointee.uid = uid
        message.pointee.gid = gid
        message.pointee.n_groups = groups.count
        message.pointee.groups = arena.values(groups)
        message.pointee.nice = nice
        message.pointee.cwd = arena.string(cwd)
        message.pointee.n_env = env.count
        message.pointee.env = arena.strings(env)
        message.pointee.migrations = migrations
        message.pointee.last_migration = lastMigration?.wire(in: arena)
        message.pointee.pid_start_ticks = pidStartTicks
        message.pointee.transfer = arena.string(transfer)
        message.pointee.peer = peer
        message.pointee.arrived_ms = arrivedMs
        message.pointee.demand = demand
        message.pointee.started_on = startedOn
        let sites = arena.array(of: UnsafeMutablePointer<Omx__Migrator__ExecSite>?.self, count: execNodes.count)
        for (index, entry) in execNodes.sorted(by: { $0.key < $1.key }).enumerated() {
            let site = arena.message(Job.execSiteCodec)
            site.pointee.pid = entry.key
            site.pointee.node = entry.value
            sites[index] = site
        }
        message.pointee.n_execs = execNodes.count
        message.pointee.execs = sites
        message.pointee.n_stopped_pids = stoppedPIDs.count
        message.pointee.stopped_pids = arena.values(stoppedPIDs)
        return message
    }

    /// The codec of `omx.migrator.ExecSite`, one entry of `execNodes` on the wire.
    static let execSiteCodec = ProtoCodec<Omx__Migrator__ExecSite>(
        name: "omx.migrator.ExecSite", initialize: { omx__migrator__exec_site__init($0) },
        packedSize: { omx__migrator__exec_site__get_packed_size($0) }, pack: { omx__migrator__exec_site__pack($0, $1) },
        unpack: { omx__migrator__exec_site__unpack($0, $1, $2) }, free: { omx__migrator__exec_site__free_unpacked($0, $1) })

    init(wire message: Omx__Migrator__Job) {
        id = cString(message.id)
        home = message.home
        `where` = message.where
        pid = message.pid
        state = JobState(wire: message.state)
        argv = cStrings(message.n_argv, message.argv)
        name = cString(message.name)
        spool = cString(message.spool)
        startedMs = message.started_ms
        exit = cString(message.exit)
        cpuPercent = message.cpu_percent
        rssBytes = message.rss_bytes
        cantmove = cString(message.cantmove)
        stay = message.stay != 0
        lock = message.lock != 0
        uid = message.uid
        gid = message.gid
        groups = cValues(message.n_groups, message.groups)
        nice = message.nice
        cwd = cString(message.cwd)
        env = cStrings(message.n_env, message.env)
        migrations = message.migrations
        lastMigration = message.last_migration.map { MigrationReport(wire: $0.pointee) }
        pidStartTicks = message.pid_start_ticks
        transfer = cString(message.transfer)
        peer = message.peer
        arrivedMs = message.arrived_ms
        demand = message.demand
        startedOn = message.started_on
        for index in 0..<message.n_execs {
            if let site = message.execs[index]?.pointee { execNodes[site.pid] = site.node }
        }
        stoppedPIDs = cValues(message.n_stopped_pids, message.stopped_pids)
    }

    public init(wire bytes: [UInt8]) throws { self = try Job.codec.decode(bytes) { Job(wire: $0) } }
    public func wire() -> [UInt8] { Job.codec.encode { message, arena in message = wire(in: arena).pointee } }

    static func list(_ count: Int, _ jobs: UnsafeMutablePointer<UnsafeMutablePointer<Omx__Migrator__Job>?>?) -> [Job] {
        (0..<count).compactMap { jobs?[$0].map { Job(wire: $0.pointee) } }
    }

    static func wire(_ jobs: [Job], in arena: CArena) -> UnsafeMutablePointer<UnsafeMutablePointer<Omx__Migrator__Job>?> {
        let array = arena.array(of: UnsafeMutablePointer<Omx__Migrator__Job>?.self, count: jobs.count)
        for (index, job) in jobs.enumerated() { array[index] = job.wire(in: arena) }
        return array
    }
}
