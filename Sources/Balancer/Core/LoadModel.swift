import Shared

/// What the Balancer's decision core reasons about besides nodes' `NodeLoad` records: pure
/// values, the same in the service and in the simulator.

/// One job running on the node that decides.
public struct JobSample: Sendable, Equatable {
    public var job: String
    public var home: UInt32
    /// Runnable processes of the job, smoothed (a CPU-bound single-threaded job is about 1).
    public var demand: Double
    public var rssBytes: UInt64
    /// Since the job started.
    public var ageMs: UInt64
    /// Since the job arrived on this node (or started here).
    public var residentMs: UInt64
    public var stay: Bool
    public var lock: Bool
    /// CRIU cannot move it now (a connection, a device, another user's limits it may not
    /// read ...: the Migrator's `cantmove`), so it is never chosen.
    public var cantmove: Bool
    /// How often it moved: each move doubles the residence it needs before the next.
    public var migrations: UInt32
    /// Bytes of file I/O per node whose files the job used (FSGateway's counters).
    public var ioBytes: [UInt32: UInt64]

    public init(
        job: String, home: UInt32, demand: Double, rssBytes: UInt64, ageMs: UInt64, residentMs: UInt64,
        stay: Bool = false, lock: Bool = false, cantmove: Bool = false, migrations: UInt32 = 0, ioBytes: [UInt32: UInt64] = [:]
    ) {
        self.job = job
        self.home = home
        self.demand = demand
        self.rssBytes = rssBytes
        self.ageMs = ageMs
        self.residentMs = residentMs
        self.stay = stay
        self.lock = lock
        self.cantmove = cantmove
        self.migrations = migrations
        self.ioBytes = ioBytes
    }
}

/// One migration the core asks for, with why.
public struct Decision: Sendable, Equatable, CustomStringConvertible {
    public var job: String
    public var target: UInt32
    public var reason: String

    public var description: String { "move job \(job) to node \(target): \(reason)" }
}

/// The core's settings.
public struct BalancerConfiguration: Sendable {
    /// A move must lower the busier node's normalized load by more than this (hysteresis).
    public var hysteresis = 0.2
    /// A new job starts elsewhere when it would find that node lighter by more than this
    /// (starting elsewhere is free: no ping-pong to fear, only stale records).
    public var placementMargin = 0.2
    /// How many of the lightest-looking peers a placement asks for their load first.
    public var placementProbes = 16
    /// A job moves at most this often (doubled with every move it made), and not before it
    /// has run this long.
    public var minResidenceMs: UInt64 = 2_000
    /// Measured migration throughput (`omx bench migrate`), for the cost of a move.
    public var migrationBytesPerSecond = 300.0 * 1_048_576
    /// Time every migration takes whatever the job's size (`omx bench migrate`).
    public var migrationFixedMs = 200.0
    /// A job moves only when its expected remaining run time, taken as its age (heavy-tailed
    /// jobs that have run long run longer), is this many times the cost of moving it.
    public var benefitOverCost = 2.0
    /// Below this share of free memory the node ushers a large job elsewhere.
    public var lowMemoryShare = 0.1
    /// A job whose I/O goes this much to one node is drawn toward that node.
    public var ioLocalityShare = 0.6
    /// The least file I/O since the last look that draws a job anywhere (a trickle does not).
    public var ioLocalityMinBytes: UInt64 = 1 << 20
    /// Peers each node sends its load record to per round (push-pull: each answers with its own).
    public var fanout = 2
    /// Load records older than this are ignored.
    public var staleAfterMs: UInt64 = 5_000
    /// The weight of the past in the node's smoothed background load, per sample (4 a second).
    public var loadDecay = 0.8

    public init() {}

    /// The freeze a job of `rssBytes` costs, in milliseconds.
    public func migrationCostMs(rssBytes: UInt64) -> Double {
        migrationFixedMs + Double(rssBytes) / migrationBytesPerSecond * 1000
    }
}

/// An exponentially decaying average: each sample weighs `1 - decay`, the past `decay`, so
/// a short burst or a swing faster than the sampling barely moves it.
public struct DecayingAverage: Sendable, Equatable {
    public private(set) var value: Double
    public let decay: Double

    public init(decay: Double, value: Double = 0) {
        self.decay = decay
        self.value = value
    }

    public mutating func add(_ sample: Double) {
        value = decay * value + (1 - decay) * sample
    }
}

/// "1.25"-style load.
public func formatLoad(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = String(hundredths % 100)
    return "\(hundredths / 100).\(fraction.count == 1 ? "0" : "")\(fraction)"
}
