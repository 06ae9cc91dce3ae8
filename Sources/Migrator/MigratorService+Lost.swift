import Shared

/// Jobs of this home on nodes that died. openMosix lost the processes of a node that crashed;
/// here the home records such jobs as lost once their node has been dead for `lostAfterNs`
/// (its Discovery's verdict, and its Migrator silent), so that `omx run --wait` and `omx mps`
/// learn of it instead of waiting for ever. A verdict is a guess: a node that comes back
/// still holding a job gives it back its record.
extension MigratorService {
    /// The start of the `exit` of a job lost with its node (a guess, unlike "lost: its init
    /// ... ended without a status").
    static let lostPrefix = "lost: node "

    /// Checks the nodes this home's jobs run on (from the monitor, every few seconds).
    func watchAwayNodes() async {
        let homeJobs = jobs.values.filter { $0.home == nodeID && $0.where != nodeID }
        let running = Set(homeJobs.filter { $0.state == .running }.map(\.where))
        let lost = Set(homeJobs.filter { $0.state == .exited && $0.exit.hasPrefix(MigratorService.lostPrefix) }.map(\.where))
        guard !running.isEmpty || !lost.isEmpty else {
            silentSince = [:]
            return
        }
        guard let members = try? await discovery.call("Discovery.Members", MembersRequest(), returning: MembersResponse.self, timeout: .seconds(1)) else {
            return  // without this node's Discovery there is no verdict to go by
        }
        let gone = Set(members.members.filter { $0.liveness == .dead || $0.liveness == .left }.map(\.id))
        let now = monotonicNs()
        silentSince = silentSince.filter { gone.contains($0.key) && running.contains($0.key) }
        let suspects = running.intersection(gone)
        let answering = await migratorsAnswering(suspects)
        for node in suspects {
            if answering.contains(node) {
                silentSince[node] = nil  // its Discovery is down, not its jobs' Migrator
                continue
            }
            let since = silentSince[node] ?? now
            silentSince[node] = since
            if now - since >= lostAfterNs { recordLost(on: node, deadForMs: (now - since) / 1_000_000) }
        }
        let back = lost.subtracting(gone)
        askedBack.formIntersection(back)
        for node in back where !askedBack.contains(node) {
            if await takeBack(from: node) { askedBack.insert(node) }
        }
    }

    /// The nodes among `nodes` whose Migrator answers a Health call within a second, all
    /// asked at once (the monitor waits for this).
    private func migratorsAnswering(_ nodes: Set<UInt32>) async -> Set<UInt32> {
        await withTaskGroup(of: UInt32?.self) { group in
            for node in nodes {
                group.addTask { [peers] in
                    (try? await peers.call(node, "Health", HealthRequest(), returning: HealthResponse.self, timeoutMs: 1_000)) != nil ? node : nil
                }
            }
            var answered: Set<UInt32> = []
            for await node in group { if let node { answered.insert(node) } }
            return answered
        }
    }

    /// Records every job of this home still running on `node` as lost.
    private func recordLost(on node: UInt32, deadForMs: UInt64) {
        for var job in jobs.values where job.home == nodeID && job.where == node && job.state == .running {
            job.state = .exited
            job.exit = "\(MigratorService.lostPrefix)\(node) died while running it (dead and silent for \(deadForMs / 1000) s)"
            job.cpuPercent = 0
            job.rssBytes = 0
            keep(job)
            host.metrics.add("omx_jobs_lost_total", help: "Jobs of this home recorded as lost with the node they ran on.")
            logger.warning("job \(job.id): \(job.exit)")
        }
        silentSince[node] = nil
    }

    /// A node whose jobs were recorded as lost is alive again: it gives back those it holds.
    /// Returns whether its Migrator answered.
    private func takeBack(from node: UInt32) async -> Bool {
        guard let list = try? await peers.call(node, "Migrator.List", ListJobsRequest(cluster: false), returning: ListJobsResponse.self, timeoutMs: 2_000) else {
            return false
        }
        for job in list.jobs where job.home == nodeID && job.where == node {
            guard let known = jobs[job.id], known.exit.hasPrefix(MigratorService.lostPrefix) else { continue }
            try? takeNews(job)
        }
        return true
    }
}
