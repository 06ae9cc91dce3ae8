import Discovery
import Shared

/// A deterministic random source (SplitMix64), so a simulation can be repeated exactly.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs the Discovery protocol core (`Membership`, the same code the service runs) for a
/// whole cluster in virtual time: no sockets, no clock. Each round every live node probes one
/// member as the service does (direct probe, then indirect probes through helpers); each
/// message is lost with probability `loss`; crashed nodes answer nothing.
public struct MembershipSimulator {
    public private(set) var nodes: [Membership]
    public private(set) var crashed: Set<UInt32> = []
    public private(set) var round = 0
    /// Messages sent so far (requests and answers, lost or not).
    public private(set) var messages = 0
    let loss: Double
    var random: SeededRandom

    /// A converged cluster of `size` nodes (ids 1...size) that all know each other as alive.
    public init(size: Int, loss: Double, seed: UInt64, configuration: SWIMConfiguration = SWIMConfiguration()) {
        self.loss = loss
        random = SeededRandom(seed: seed)
        let ids = (1...size).map(UInt32.init)
        let alive = ids.map { MemberUpdate(nodeID: $0, state: .alive, incarnation: 1, mapDigest: "", version: "") }
        nodes = ids.map { id in
            var node = Membership(selfID: id, nodeIDs: ids, mapDigest: "", version: "", incarnation: 1, configuration: configuration)
            node.apply(alive, nowMs: 0)
            node.markConverged()
            return node
        }
    }

    var nowMs: UInt64 { UInt64(round) * (nodes.first?.configuration.probeIntervalMs ?? 1) }

    /// Stops node `id`: from now on it sends and answers nothing.
    public mutating func crash(_ id: UInt32) { crashed.insert(id) }

    private mutating func delivered() -> Bool {
        messages += 1
        return Double.random(in: 0..<1, using: &random) >= loss
    }

    private func index(_ id: UInt32) -> Int { Int(id) - 1 }

    /// One message from `from` to `to` carrying `from`'s outgoing updates; true when it arrived.
    private mutating func send(from: UInt32, to: UInt32) -> Bool {
        let updates = nodes[index(from)].outgoing(to: to)
        guard delivered(), !crashed.contains(to) else { return false }
        nodes[index(to)].heardFrom(from, nowMs: nowMs)
        nodes[index(to)].apply(updates, nowMs: nowMs)
        return true
    }

    /// A probe and its ack between two nodes.
    private mutating func roundTrip(from: UInt32, to: UInt32) -> Bool {
        send(from: from, to: to) && send(from: to, to: from)
    }

    /// Every live node probes once; then suspicions that ran out become deaths.
    public mutating func step() {
        round += 1
        for position in nodes.indices.shuffled(using: &random) {
            let prober = nodes[position].selfID
            guard !crashed.contains(prober) else { continue }
            guard let target = nodes[position].nextProbeTarget(using: &random) else { continue }
            if roundTrip(from: prober, to: target) { continue }
            var reached = false
            for helper in nodes[position].indirectHelpers(for: target, count: nodes[position].configuration.indirectProbes, using: &random) {
                guard send(from: prober, to: helper) else { continue }
                let helped = roundTrip(from: helper, to: target)
                if send(from: helper, to: prober) && helped { reached = true }
            }
            if !reached { nodes[position].probeFailed(target, nowMs: nowMs) }
        }
        for position in nodes.indices where !crashed.contains(nodes[position].selfID) {
            nodes[position].tick(nowMs: nowMs)
        }
    }

    /// How many live nodes see `id` in one of `states`.
    public func count(seeing id: UInt32, in states: Set<MemberState>) -> Int {
        nodes.filter { !crashed.contains($0.selfID) && $0.selfID != id && states.contains($0.members[id]?.state ?? .dead) }.count
    }

    /// How many times live nodes declared a member dead so far (their own suspicion ran out).
    public var deathsDeclared: Int {
        nodes.filter { !crashed.contains($0.selfID) }.reduce(0) { $0 + $1.declaredDead }
    }
}
