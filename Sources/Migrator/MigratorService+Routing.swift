import Shared

/// Where a call about a job is answered (its home, the node it runs on, a forwarding address)
/// and who may make it.
extension MigratorService {
    /// The home node in job id "HOME.N".
    func homeNode(of id: String) throws -> UInt32 {
        let parts = id.split(separator: ".")
        guard parts.count == 2, let home = UInt32(parts[0]), UInt64(parts[1]) != nil else {
            throw RPCError(.invalidArgument, "\"\(id)\" is not a job id (HOME.N, e.g. 1.7)")
        }
        return home
    }

    /// The node a call about job `id` must go to, or nil when it is to be answered here.
    /// The home forwards to where the job runs; another node forwards local callers to the home.
    func forwardTarget(_ id: String, caller: Caller) throws -> UInt32? {
        let home = try homeNode(of: id)
        if let job = jobs[id], job.where == nodeID { return nil }
        if home == nodeID {
            guard let job = jobs[id] else { return nil }
            if job.state == .exited { return nil }
            return job.where
        }
        if caller.isClient { return home }
        if let moved = departed[id] {
            if monotonicNs() - moved.atNs < 60_000_000_000 { return moved.node }
            departed[id] = nil
        }
        return nil
    }

    /// The job `id` running here, which `caller` may act on.
    func runningHere(_ id: String, caller: Caller, method: String) throws -> Job {
        guard let job = jobs[id] else { throw RPCError(.notFound, "\(method): node \(nodeID) has no job \(id)") }
        try authorize(caller, for: job, method: method)
        guard job.state == .running || job.state == .migrating else { throw RPCError(.failedPrecondition, "\(method): job \(id) has ended (\(job.exit))") }
        guard job.where == nodeID else { throw RPCError(.notFound, "\(method): job \(id) runs on node \(job.where), not \(nodeID)") }
        return job
    }

    /// Checks a local user's call about job `id` before it is forwarded (the node it goes to
    /// sees only this Migrator): the job's owner and root only. The record is this node's, else
    /// the home's (`Migrator.Wait` without waiting).
    func authorizeForwarded(_ id: String, caller: Caller, method: String) async throws {
        guard case let .local(_, uid, _, _) = caller, uid != 0 else { return }
        var record = jobs[id]
        if record == nil {
            let home = try homeNode(of: id)
            record = try await peers.call(home, "Migrator.Wait", WaitRequest(job: id, timeoutMs: 0), returning: Job.self, timeoutMs: 5_000)
        }
        if let record { try authorize(caller, for: record, method: method) }
    }

    /// Root, the job's owner and other nodes' Migrators may act on a job; others may not.
    func authorize(_ caller: Caller, for job: Job, method: String) throws {
        if case let .local(_, uid, _, _) = caller, uid != 0 && uid != job.uid {
            throw RPCError(.permissionDenied, "\(method): job \(job.id) belongs to uid \(job.uid), not to uid \(uid)")
        }
    }
}
