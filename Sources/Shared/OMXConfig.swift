import Synchronization

/// What `/etc/omx/omx.conf` sets: what openMosix fixed at kernel build time and still means
/// something here (oMFS and DFSA on or off, the disclosure level, secure ports), plus ports,
/// paths and the Balancer's thresholds. Every field left nil keeps the built-in default of the
/// service that uses it; a command-line option or an `OMX_*` variable beats the file.
/// `compose/omx.conf` documents every key.
public struct OMXConfig: Sendable, Equatable {
    /// Which other users' jobs `omx mps` shows to a user who is not root.
    public enum Disclosure: Int, Sendable, Equatable {
        /// Only the user's own jobs.
        case ownJobsOnly = 0
        /// Everyone's jobs, but not other users' command lines.
        case withoutCommands = 1
        /// Everyone's jobs with their command lines.
        case everything = 2
    }

    /// The TCP ports of the services, the same on every node.
    public struct Ports: Sendable, Equatable {
        public var discovery = 7701
        public var balancer = 7702
        public var migrator = 7703
        /// Instance K of the FSGateway listens on this + K.
        public var fsgateway = 7710
    }

    /// The Balancer's tunables; nil keeps the Balancer's default.
    public struct BalancerSettings: Sendable, Equatable {
        public var speed: UInt32?
        public var loadSource: String?
        public var migrationMiBps: Double?
        public var loadDecay: Double?
        public var hysteresis: Double?
        public var placementMargin: Double?
        public var minResidenceMs: UInt64?
        public var benefitOverCost: Double?
        public var lowMemoryShare: Double?
        public var ioLocalityShare: Double?
        public var fanout: Int?
        public var staleAfterMs: UInt64?
    }

    /// The Migrator's paths and limits; nil keeps the Migrator's default.
    public struct MigratorSettings: Sendable, Equatable {
        public var stateDir: String?
        public var spoolDir: String?
        public var criu: String?
        public var maxTransferRateMiBps: UInt64?
        /// Seconds a node running a home's jobs may be dead before they are recorded as lost.
        public var lostAfterSeconds: UInt64?
    }

    /// What one caller may hold of each service (`RPCServer.Configuration`); nil keeps the
    /// built-in value.
    public struct LimitSettings: Sendable, Equatable {
        public var connectionsPerUser: Int?
        public var connectionsPerAddress: Int?
        public var stalledSeconds: Int?
    }

    /// oMFS: the gateways and the `/mfs` mount.
    public struct MfsSettings: Sendable, Equatable {
        /// Off: `omx-fsgateway` neither serves nor mounts (openMosix without CONFIG_MOSIX_FS).
        public var enabled = true
        public var mountpoint = "/mfs"
        public var export: String?
        public var cacheSeconds: Double?
        /// Direct file system access: a migrated job's file calls go straight to the node
        /// whose files they are; off: through its home node's gateway.
        public var dfsa = true
        /// How long a gateway keeps a file open that nobody uses or renews; mounts renew the
        /// leases of the files they hold open every quarter of it.
        public var leaseSeconds = 600
        /// Threads of each gateway for calls that move data, list directories or reach file
        /// systems that may hang (at most half of them for those).
        public var ioThreads = 16
        /// Where `enabled` was set, for the error that names it.
        public var enabledSetAt: String?
    }

    /// The file this came from, or a note that no file was read.
    public var source = "built-in defaults (no \(OMXConfig.defaultPath))"
    public var mapPath: String?
    public var keyPath: String?
    public var runDir: String?
    /// Refuse TCP peers whose address is not in the map (openMosix's secure ports).
    public var securePorts = true
    public var disclosure = Disclosure.withoutCommands
    public var logLevel: String?
    /// Microseconds a caller's loop or thread keeps polling for an answer before it sleeps
    /// (`EventLoop+AnswerPolling.swift`); 0: it sleeps at once.
    public var answerPollMicroseconds = 100
    public var ports = Ports()
    public var mfs = MfsSettings()
    public var migrator = MigratorSettings()
    public var balancer = BalancerSettings()
    public var limits = LimitSettings()

    public static let defaultPath = "/etc/omx/omx.conf"

    public init() {}

    /// The process's configuration behind a lock. A class holds the Mutex: a `static let` Mutex
    /// read before any write came back as garbage from Swift 6.3's release builds.
    private final class Current: Sendable {
        let value = Mutex(OMXConfig())
    }

    private static let current = Current()

    /// The configuration this process runs with (the built-in defaults until `activate`).
    public static var active: OMXConfig { current.value.withLock { $0 } }

    /// Loads the configuration at `path`, else `$OMX_CONFIG`, else `/etc/omx/omx.conf` when it
    /// exists, makes it the process's active one and returns it.
    /// - Throws: `ConfigError` naming file:line for every bad line, or the file that cannot be read.
    @discardableResult
    public static func activate(path option: String?) throws -> OMXConfig {
        let config: OMXConfig
        if let path = option ?? environmentValue("OMX_CONFIG") {
            config = try parse(String(decoding: try readFileBytes(path), as: UTF8.self), source: path)
        } else if fileExists(defaultPath) {
            config = try parse(String(decoding: try readFileBytes(defaultPath), as: UTF8.self), source: defaultPath)
        } else {
            config = OMXConfig()
        }
        current.value.withLock { $0 = config }
        return config
    }
}
