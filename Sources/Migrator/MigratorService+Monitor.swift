import Glibc
import Shared

/// Startup recovery and the periodic watch over the jobs running here.
extension MigratorService {
    static let monitorInterval: Duration = .milliseconds(500)

    /// Loads the registry and settles what a restart left open: re-adopts jobs still running,
    /// records the ones that ended meanwhile, and finishes or undoes migrations this node was
    /// sending when it stopped.
    func start() async {
        do {
            execEvents = try ExecEvents(logger: logger) { [self] exec in Task { await noteExec(exec) } }
        } catch {
            logger.warning("\(error); /mfs/lastexec answers with the node where each job started")
        }
        let (loaded, unreadable) = store.loadJobs()
        for problem in unreadable { logger.error("unreadable job record, left alone: \(problem)") }
        for job in loaded { jobs[job.id] = job }
        let (restored, unreadableIncoming) = store.loadIncoming()
        for problem in unreadableIncoming { logger.error("unreadable incoming job record, left alone: \(problem)") }
        for job in restored { pending[job.transfer] = (job, 0) }
        let kept = Set(pending.keys)
        for name in (try? listDirectory("\(store.stateDir)/images")) ?? [] where !kept.contains(name) { removeTree("\(store.stateDir)/images/\(name)") }

        for job in loaded where job.where == nodeID && job.state == .migrating {
            await settleInterruptedMigration(job)
        }
        let running = jobs.values.filter { $0.where == nodeID && $0.state == .running }
        let adopted = running.filter { ProcessTree.isRunning(pid: $0.pid, startTicks: $0.pidStartTicks) }
        if !loaded.isEmpty || !restored.isEmpty {
            logger.info("registry: \(loaded.count) job(s), \(adopted.count) still running here and re-adopted, \(restored.count) restored job(s) awaiting their source")
        }
        for job in jobs.values where job.home != nodeID {
            // A guest that ended here was not reported yet (a reported end drops its record);
            // one running here may have arrived just before the restart, unreported: telling
            // its home again is harmless.
            if job.state == .exited { unreportedEnds.insert(job.id) } else if job.where == nodeID { unreportedMoves.insert(job.id) }
        }
    }

    /// A migration from here was under way when this Migrator stopped: if it had committed,
    /// the target runs the job and the frozen original goes; otherwise the original resumes.
    private func settleInterruptedMigration(_ original: Job) async {
        var job = original
        let transfer = job.transfer
        let target = job.peer
        if store.outcome(of: transfer) == .committed {
            if ProcessTree.isRunning(pid: job.pid, startTicks: job.pidStartTicks) { killTree(job.pid) }
            if job.home == nodeID {
                job.state = .running
                job.where = target
                job.pid = 0
                job.migrations += 1
                job.transfer = ""
                job.peer = 0
                keep(job)
            } else {
                // A guest that left: its record goes, as after any move away (the target tells
                // the home where it runs now).
                jobs[job.id] = nil
                store.remove(job.id)
                departed[job.id] = (target, monotonicNs())
            }
            logger.notice("job \(job.id): migration \(transfer) to node \(target) had committed before the restart; the job runs there")
            _ = try? await peers.call(target, "Migrator.Commit", TransferRef(transfer: transfer), returning: Empty.self, timeoutMs: 2_000)
        } else {
            try? store.recordOutcome(transfer, .aborted)
            resume(job.pid, keepingStopped: job.stoppedPIDs)
            job.stoppedPIDs = []
            job.state = .running
            job.transfer = ""
            job.peer = 0
            keep(job)
            logger.notice("job \(job.id): migration \(transfer) to node \(target) had not committed before the restart; the job resumes here")
            _ = try? await peers.call(target, "Migrator.Abort", TransferRef(transfer: transfer), returning: Empty.self, timeoutMs: 2_000)
        }
    }

    /// Every half second: notices ended jobs, refreshes CPU, memory and cantmove, tells homes
    /// what they missed, and asks sources about jobs restored here that wait for a decision;
    /// every two seconds, checks the nodes this home's jobs run on and drops stalled incoming
    /// transfers; every hour, forgets decisions older than a week.
    func monitor() async {
        var rounds = 0
        while !Task.isCancelled {
            await checkJobs()
            await reportToHomes()
            await resolvePending()
            if rounds % 4 == 0 {
                await watchAwayNodes()
                dropStalledTransfers()
            }
            if rounds % 7_200 == 0 { store.pruneOutcomes() }
            rounds += 1
            try? await Task.sleep(for: MigratorService.monitorInterval)
        }
    }

    private func checkJobs() async {
        let now = monotonicNs()
        // Each record is read afresh: an exec noted while `ended` waited is not overwritten.
        for id in Array(jobs.keys) {
            guard var job = jobs[id], job.where == nodeID, job.state == .running else { continue }
            guard ProcessTree.isRunning(pid: job.pid, startTicks: job.pidStartTicks) else {
                await ended(job)
                continue
            }
            let ticks = ProcessTree.cpuTicks(of: job.pid)
            if let previous = cpuSamples[job.id], now > previous.atNs {
                let seconds = Double(now - previous.atNs) / 1e9
                job.cpuPercent = Double(ticks &- previous.ticks) / Double(sysconf(Int32(_SC_CLK_TCK))) / seconds * 100
            }
            cpuSamples[job.id] = (ticks, now)
            // Smoothed over about two seconds of half-second samples.
            job.demand = 0.75 * job.demand + 0.25 * Double(ProcessTree.runnableThreads(of: job.pid))
            job.rssBytes = ProcessTree.residentBytes(of: job.pid)
            job.cantmove = ProcessTree.cantmove(root: job.pid, runDir: host.runDir) ?? ""
            jobs[job.id] = job
        }
    }

    /// Records how a job running here ended (its init's status file, else the wait status).
    private func ended(_ original: Job) async {
        var job = original
        var status: Int32 = 0
        let reaped = waitpid(job.pid, &status, WNOHANG) == job.pid
        if let text = try? readTextFile("\(job.spool)/status"), !text.trimmedWhitespace.isEmpty {
            job.exit = text.trimmedWhitespace
        } else if reaped {
            job.exit = (status & 0x7f) == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
        } else {
            job.exit = "lost: its init (pid \(job.pid)) ended without a status"
        }
        job.state = .exited
        job.cpuPercent = 0
        job.rssBytes = 0
        cpuSamples[job.id] = nil
        keep(job)
        logger.info("job \(job.id) ended: \(job.exit)")
        if job.home != nodeID { unreportedEnds.insert(job.id) }
    }

    /// Tells homes about guest jobs that ended or arrived here while they could not be reached.
    private func reportToHomes() async {
        for id in unreportedEnds.union(unreportedMoves) {
            guard let job = jobs[id] else {
                unreportedEnds.remove(id)
                unreportedMoves.remove(id)
                continue
            }
            do {
                _ = try await peers.call(job.home, "Migrator.Update", job, returning: Empty.self, timeoutMs: 2_000)
                unreportedMoves.remove(id)
                if unreportedEnds.remove(id) != nil {
                    jobs[id] = nil
                    store.remove(id)
                }
            } catch {
                logger.debug("cannot tell node \(job.home) about job \(id) yet: \(error)")
            }
        }
    }

    /// Saves `job` in memory and on disk (a failure to write is logged: the memory copy rules).
    func keep(_ job: Job) {
        jobs[job.id] = job
        do { try store.save(job) } catch { logger.error("cannot save job \(job.id): \(error)") }
    }

    /// Continues the processes of the tree rooted at `pid` (CRIU left them stopped), but those
    /// that were stopped before the checkpoint (`stopped`, pids in the job's namespace): a
    /// job its user stopped stays stopped wherever it moved.
    func resume(_ pid: Int32, keepingStopped stopped: [UInt32] = []) {
        for member in ProcessTree.members(of: pid) {
            if !stopped.isEmpty, let inside = namespacePID(of: member), stopped.contains(UInt32(inside)) { continue }
            Glibc.kill(member, SIGCONT)
        }
    }

    /// The processes of the tree rooted at `pid` that are stopped by a signal, by their pids
    /// in the job's namespace.
    func stoppedMembers(of pid: Int32) -> [UInt32] {
        ProcessTree.members(of: pid).filter { ProcStat(pid: $0)?.state == "T" }.compactMap { namespacePID(of: $0).map(UInt32.init) }
    }

    /// Ends the tree rooted at `pid` (SIGKILL to its namespace init ends the namespace) and
    /// reaps it when it is this process's child.
    func killTree(_ pid: Int32) {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
    }
}
