import Shared

/// The Balancer's decision: given this node's load and jobs and the freshest records heard
/// from a few peers, which job (if any) to move where, and why. Pure and deterministic for a
/// given random source, so the service and the simulator run the very same code.
public enum DecisionCore {
    /// At most one decision per round.
    /// - Parameters:
    ///   - own: this node's record.
    ///   - jobs: the jobs running here.
    ///   - peers: records of live, matching peers (Discovery's dead, left and mismatched
    ///     nodes are never passed in); stale, quiet and blocked ones are left out here.
    ///   - nowMs: the clock the records' ages are measured with.
    ///   - random: picks among equally good targets, so that nodes do not all pick the same one.
    public static func decide<R: RandomNumberGenerator>(
        own: NodeLoad, jobs: [JobSample], peers: [NodeLoad], configuration: BalancerConfiguration, nowMs: UInt64, random: inout R
    ) -> Decision? {
        guard !own.policy.quiet, !own.policy.stay else { return nil }
        let targets = possibleTargets(own: own, peers: peers, configuration: configuration, nowMs: nowMs)
        guard !targets.isEmpty else { return nil }
        let movable = jobs.filter { job in
            !job.lock && !job.stay && !job.cantmove && !(own.policy.lstay && job.home == own.node)
                && job.residentMs >= configuration.minResidenceMs << min(UInt64(job.migrations), 6)
                && Double(job.ageMs) >= configuration.benefitOverCost * configuration.migrationCostMs(rssBytes: job.rssBytes)
        }
        guard !movable.isEmpty else { return nil }
        if let decision = usherMemory(own: own, jobs: movable, targets: targets, configuration: configuration) { return decision }
        if let decision = followIO(own: own, jobs: movable, targets: targets, configuration: configuration) { return decision }
        return balanceLoad(own: own, jobs: movable, targets: targets, configuration: configuration, random: &random)
    }

    /// Where a new job of `demand` should start: the node it would find least loaded, this one
    /// unless another is lighter by more than the placement margin. Starting elsewhere costs nothing
    /// (no image to move), so this spares the migration the job would otherwise soon need.
    public static func place<R: RandomNumberGenerator>(
        demand: Double, own: NodeLoad, peers: [NodeLoad], configuration: BalancerConfiguration, nowMs: UInt64, random: inout R
    ) -> UInt32 {
        guard !own.policy.quiet else { return own.node }
        let here = own.normalizedLoad(adding: demand)
        let candidates = possibleTargets(own: own, peers: peers, configuration: configuration, nowMs: nowMs).filter { peer in
            peer.normalizedLoad(adding: demand) < here - configuration.placementMargin
        }
        guard let best = candidates.map({ $0.normalizedLoad(adding: demand) }).min() else { return own.node }
        let ties = candidates.filter { abs($0.normalizedLoad(adding: demand) - best) < 1e-9 }
        return ties[Int.random(in: 0..<ties.count, using: &random)].node
    }

    /// The peers worth asking for their load now before placing a new job of `demand`: the
    /// `placementProbes` that look lightest. Records are seconds old and other nodes place
    /// jobs too; a probe's answer replaces the record, so `place` then decides on the present.
    public static func probeCandidates(demand: Double, own: NodeLoad, peers: [NodeLoad], configuration: BalancerConfiguration, nowMs: UInt64) -> [UInt32] {
        guard !own.policy.quiet else { return [] }
        return possibleTargets(own: own, peers: peers, configuration: configuration, nowMs: nowMs)
            .sorted { ($0.normalizedLoad(adding: demand), $0.node) < ($1.normalizedLoad(adding: demand), $1.node) }
            .prefix(configuration.placementProbes).map(\.node)
    }

    /// Peers a job may go to: not this node, not blocked or quiet, with a fresh record.
    private static func possibleTargets(own: NodeLoad, peers: [NodeLoad], configuration: BalancerConfiguration, nowMs: UInt64) -> [NodeLoad] {
        peers.filter { peer in
            peer.node != own.node && !peer.policy.block && !peer.policy.quiet
                && (nowMs < peer.sampledMs || nowMs - peer.sampledMs <= configuration.staleAfterMs)
        }
    }

    /// Free memory below the low share: the largest job goes where memory is most plentiful.
    private static func usherMemory(own: NodeLoad, jobs: [JobSample], targets: [NodeLoad], configuration: BalancerConfiguration) -> Decision? {
        guard own.totalMemory > 0, Double(own.freeMemory) < configuration.lowMemoryShare * Double(own.totalMemory) else { return nil }
        guard let job = jobs.max(by: { $0.rssBytes < $1.rssBytes }), job.rssBytes > 0 else { return nil }
        guard let target = targets.filter({ $0.freeMemory > 2 * job.rssBytes }).max(by: { $0.freeMemory < $1.freeMemory }) else { return nil }
        return Decision(
            job: job.job, target: target.node,
            reason: "memory ushering: \(mebibytes(own.freeMemory)) of \(mebibytes(own.totalMemory)) free here, \(mebibytes(target.freeMemory)) on node \(target.node); the job holds \(mebibytes(job.rssBytes))")
    }

    /// A job whose file I/O goes mostly to one node moves there, unless that overloads it.
    private static func followIO(own: NodeLoad, jobs: [JobSample], targets: [NodeLoad], configuration: BalancerConfiguration) -> Decision? {
        for job in jobs.sorted(by: { $0.job < $1.job }) {
            let total = job.ioBytes.values.reduce(0, +)
            guard total >= configuration.ioLocalityMinBytes, let (node, bytes) = job.ioBytes.max(by: { $0.value < $1.value }), node != own.node else { continue }
            let share = Double(bytes) / Double(total)
            guard share >= configuration.ioLocalityShare, let target = targets.first(where: { $0.node == node }) else { continue }
            // Toward the data, unless that overloads the node and makes it busier than this one.
            guard target.normalizedLoad(adding: job.demand) <= max(1, own.normalizedLoad + configuration.hysteresis) else { continue }
            return Decision(job: job.job, target: node, reason: "I/O locality: \(Int((share * 100).rounded())) % of its file I/O goes to node \(node)")
        }
        return nil
    }

    /// The busiest-to-idlest move that lowers the pair's higher normalized load by more than
    /// the hysteresis; with equal gains the cheaper job, and a random one of the best targets.
    private static func balanceLoad<R: RandomNumberGenerator>(
        own: NodeLoad, jobs: [JobSample], targets: [NodeLoad], configuration: BalancerConfiguration, random: inout R
    ) -> Decision? {
        var candidates: [(gain: Double, cost: Double, job: JobSample, target: NodeLoad)] = []
        for job in jobs where job.demand > 0.05 {
            for target in targets {
                let before = max(own.normalizedLoad, target.normalizedLoad)
                let after = max(own.normalizedLoad(adding: -job.demand), target.normalizedLoad(adding: job.demand))
                guard before - after > configuration.hysteresis else { continue }
                candidates.append((before - after, configuration.migrationCostMs(rssBytes: job.rssBytes), job, target))
            }
        }
        // The largest gain, then the cheapest job; among its equally good targets, any.
        guard let best = candidates.min(by: { ($1.gain, -$1.cost, $1.job.job) < ($0.gain, -$0.cost, $0.job.job) }) else { return nil }
        let ties = candidates.filter { $0.job.job == best.job.job && abs($0.gain - best.gain) < 1e-9 }.map(\.target)
        let target = ties[Int.random(in: 0..<ties.count, using: &random)]
        return Decision(
            job: best.job.job, target: target.node,
            reason: "load: \(formatLoad(own.normalizedLoad)) here vs \(formatLoad(target.normalizedLoad)) on node \(target.node) (per reference CPU); moving demand \(formatLoad(best.job.demand)) gives \(formatLoad(own.normalizedLoad(adding: -best.job.demand))) vs \(formatLoad(target.normalizedLoad(adding: best.job.demand))); cost \(Int(best.cost)) ms for a job \(best.job.ageMs / 1000) s old")
    }

    private static func mebibytes(_ bytes: UInt64) -> String { "\(bytes >> 20) MiB" }
}
