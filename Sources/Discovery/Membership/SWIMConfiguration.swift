import Glibc

/// The timing of the failure detector. The defaults detect a killed node everywhere within
/// about 2.5 s on a small cluster and tolerate a few hundred milliseconds of scheduling delay.
public struct SWIMConfiguration: Sendable, Equatable {
    /// One probe per interval (a protocol round).
    public var probeIntervalMs: UInt64 = 250
    /// How long a direct probe waits for its ack before asking helpers.
    public var probeTimeoutMs: UInt64 = 100
    /// How many members are asked to probe a target that missed its direct probe.
    public var indirectProbes = 3
    /// The shortest suspicion before a suspect is declared dead.
    public var suspicionMinMs: UInt64 = 1_200
    /// Suspicion lasts multiplier × log10(N + 1) probe intervals when that is longer.
    public var suspicionMultiplier = 4.0
    /// Each update is piggybacked multiplier × ceil(log10(N + 1)) times.
    public var retransmitMultiplier = 3
    /// Updates carried by one message at most.
    public var maxPiggyback = 8
    /// Every this many rounds, a dead member is probed too, so it is found when it comes back.
    public var deadProbeEveryRounds = 10

    public init() {}
}

/// How long a suspect stays suspect before it is declared dead, for a cluster of `members` nodes.
public func suspicionTimeoutMs(members: Int, _ configuration: SWIMConfiguration) -> UInt64 {
    let scaled = configuration.suspicionMultiplier * log10(Double(max(members, 1)) + 1) * Double(configuration.probeIntervalMs)
    return max(configuration.suspicionMinMs, UInt64(scaled))
}

/// How many times each update is piggybacked, for a cluster of `members` nodes.
public func retransmitLimit(members: Int, _ configuration: SWIMConfiguration) -> Int {
    configuration.retransmitMultiplier * max(1, Int(log10(Double(max(members, 1)) + 1).rounded(.up)))
}
