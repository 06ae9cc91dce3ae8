import Shared

/// `/mfs/lastexec`: where each process of a job last called exec. An exec made inside a job
/// running here is noted in the job's record under the process's pid inside the job's
/// namespace, which CRIU keeps; so the notes travel with the job, and a process that has not
/// exec'd since a move still answers with the node where it did.
extension MigratorService {
    /// Notes `exec` when its job runs here (on a local cluster every node hears every exec).
    func noteExec(_ exec: ExecEvents.Exec) {
        guard var job = jobs[exec.job], job.where == nodeID, job.state == .running, job.pid == exec.initPID else { return }
        job.execNodes[exec.namespacePID] = nodeID
        if job.execNodes.count > 64 { job.execNodes = liveExecNodes(of: job) }
        jobs[job.id] = job
    }

    /// The job's exec notes of processes that still exist.
    func liveExecNodes(of job: Job) -> [Int32: UInt32] {
        let alive = Set(ProcessTree.members(of: job.pid).compactMap { namespacePID(of: $0) })
        return job.execNodes.filter { alive.contains($0.key) }
    }

    /// `Migrator.LastExec`: the node of the nearest exec among the caller and its ancestors,
    /// else where the job started; asked of the node where the job runs.
    func lastExec(_ request: LastExecRequest, caller: Caller) async throws -> LastExecResponse {
        if let node = try forwardTarget(request.job, caller: caller) {
            return try await peers.call(node, "Migrator.LastExec", request, returning: LastExecResponse.self, timeoutMs: 2_000)
        }
        let job = try runningHere(request.job, caller: caller, method: "Migrator.LastExec")
        for pid in request.pids {
            if let node = job.execNodes[pid] { return LastExecResponse(node: node) }
        }
        return LastExecResponse(node: job.startedOn != 0 ? job.startedOn : job.home)
    }
}
