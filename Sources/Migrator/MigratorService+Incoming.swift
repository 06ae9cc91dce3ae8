import Glibc
import Shared

/// Receiving a job: images arrive, CRIU restores the job stopped, and it runs only when the
/// source commits. A restored job whose source never says is asked about until it does.
extension MigratorService {
    /// After this long without a word from the source, a restored job asks it for the outcome.
    static let askSourceAfterNs: UInt64 = 3_000_000_000

    /// `Migrator.Receive`: a migration's images are coming.
    func receive(_ begin: TransferBegin, caller: Caller) async throws -> Empty {
        try MigratorService.requirePeer(caller, "Migrator.Receive")
        try await admitGuest(begin.job, method: "Migrator.Receive")
        try MigratorService.checkTransfer(begin.transfer, "Migrator.Receive")
        guard !incoming.contains(begin.transfer), pending[begin.transfer] == nil,
              incoming.add(try ImageReceiver(begin: begin, directory: store.imagesDir(begin.transfer)))
        else {
            throw RPCError(.alreadyExists, "Migrator.Receive: transfer \(begin.transfer) is already under way")
        }
        logger.info("receiving job \(begin.job.id) from node \(begin.source): \(begin.files.count) image files, \(begin.files.reduce(0) { $0 + $1.size }) bytes (transfer \(begin.transfer))")
        return Empty()
    }

    /// Refuses a guest while this node sends its guests away, or when its Balancer says `block`
    /// (a job coming home is no guest). A Balancer that does not answer blocks nothing.
    func admitGuest(_ job: Job, method: String) async throws {
        guard job.home != nodeID else { return }
        let answer = try? await balancer.call("Balancer.GetLoad", GetLoadRequest(), returning: GetLoadResponse.self, timeout: .milliseconds(500))
        // Asked once the Balancer answered: an expel may have begun meanwhile.
        if expelling > 0 {
            throw RPCError(.failedPrecondition, "\(method): node \(nodeID) is sending its guest jobs away")
        }
        if answer?.load.policy.block == true {
            throw RPCError(.failedPrecondition, "\(method): node \(nodeID) blocks guest jobs (omx mosctl noblock on node \(nodeID) lifts it)")
        }
    }

    /// `Migrator.Restore`: restores the received job, stopped until Commit.
    func restore(_ transfer: String) async throws -> RestoreResponse {
        guard let receiver = incoming.remove(transfer) else {
            throw RPCError(.notFound, "Migrator.Restore: node \(nodeID) has no transfer \(transfer) under way")
        }
        // Until it is pending, an expel that starts meanwhile waits for this guest.
        let isGuest = receiver.begin.job.home != nodeID
        if isGuest { arriving += 1 }
        defer { if isGuest { arriving -= 1 } }
        if let missing = receiver.missing {
            removeTree(receiver.directory)
            throw RPCError(.failedPrecondition, "Migrator.Restore: transfer \(transfer) is incomplete: \(missing)")
        }
        // A node blocked (or expelling) since the transfer began takes no guest either.
        do {
            try await admitGuest(receiver.begin.job, method: "Migrator.Restore")
        } catch {
            removeTree(receiver.directory)
            throw error
        }
        let started = monotonicNs()
        let pid: Int32
        do {
            pid = try await criu.restore(from: receiver.directory)
        } catch {
            removeTree(receiver.directory)
            logger.warning("restore of job \(receiver.begin.job.id) failed: \(error)")
            throw RPCError(.internal, "restore on node \(nodeID) failed: \(error)")
        }
        var job = receiver.begin.job
        job.where = nodeID
        job.pid = pid
        job.pidStartTicks = ProcessTree.startTicks(of: pid) ?? 0
        job.state = .migrating
        job.transfer = transfer
        job.peer = receiver.begin.source
        do {
            try store.saveIncoming(job)
        } catch {
            // Without its record a restart here would leave the copy stopped for ever: the
            // source keeps its original instead.
            killTree(pid)
            removeTree(receiver.directory)
            logger.error("cannot save restored job \(job.id), dropped its copy: \(error)")
            throw RPCError(.internal, "restore on node \(nodeID) failed: cannot save the restored job's record: \(error)")
        }
        pending[transfer] = (job, monotonicNs())
        logger.info("restored job \(job.id) as pid \(pid) in \((monotonicNs() - started) / 1_000_000) ms; stopped until node \(job.peer) commits")
        return RestoreResponse(pid: pid, pidStartTicks: job.pidStartTicks)
    }

    /// `Migrator.Commit`: the source let go of its copy; the restored job runs.
    func commit(_ transfer: String, report: MigrationReport? = nil) throws -> Empty {
        guard let (restored, _) = pending.removeValue(forKey: transfer) else {
            throw RPCError(.notFound, "Migrator.Commit: node \(nodeID) has no restored job for transfer \(transfer)")
        }
        var job = restored
        resume(job.pid, keepingStopped: job.stoppedPIDs)
        job.stoppedPIDs = []
        job.state = .running
        job.transfer = ""
        job.peer = 0
        job.migrations += 1
        job.arrivedMs = wallClockMs()
        if let report { job.lastMigration = report }
        jobs[job.id] = job
        do {
            try store.save(job)
            store.removeIncoming(transfer)
        } catch {
            // The incoming record stays: after a restart the source's "committed" adopts the job.
            logger.error("cannot save job \(job.id): \(error)")
        }
        removeTree(store.imagesDir(transfer))
        host.metrics.add("omx_migrations_received_total", help: "Jobs that migrated to this node and run here.")
        logger.info("job \(job.id) runs here now as pid \(job.pid)")
        if job.home != nodeID { unreportedMoves.insert(job.id) }
        return Empty()
    }

    /// `Migrator.Abort`, or the source's "aborted": drops the transfer and any restored copy.
    func abortIncoming(_ transfer: String, why: String) -> Empty {
        if let (job, _) = pending.removeValue(forKey: transfer) {
            killTree(job.pid)
            store.removeIncoming(transfer)
            logger.notice("dropped the restored copy of job \(job.id) (pid \(job.pid)): \(why)")
        }
        dropIncoming(transfer)
        return Empty()
    }

    private func dropIncoming(_ transfer: String) {
        incoming.remove(transfer)
        removeTree(store.imagesDir(transfer))
    }

    /// How long a transfer may receive nothing before it is dropped with its files.
    static let transferIdleNs: UInt64 = 120_000_000_000

    /// Drops transfers whose source fell silent (it died, or its `Abort` was lost).
    func dropStalledTransfers() {
        for receiver in incoming.dropIdle(longerThan: MigratorService.transferIdleNs) {
            removeTree(receiver.directory)
            logger.notice("dropped transfer \(receiver.transfer) of job \(receiver.begin.job.id): nothing arrived from node \(receiver.begin.source) for \(MigratorService.transferIdleNs / 1_000_000_000) s")
        }
    }

    /// Asks the source of each restored job that has waited too long what it decided.
    func resolvePending() async {
        let now = monotonicNs()
        for (transfer, entry) in pending where entry.restoredNs == 0 || now - entry.restoredNs > MigratorService.askSourceAfterNs {
            guard let answer = try? await peers.call(entry.job.peer, "Migrator.Outcome", TransferRef(transfer: transfer), returning: OutcomeResponse.self, timeoutMs: 2_000) else {
                continue
            }
            switch answer.outcome {
            case .committed: _ = try? commit(transfer)
            case .aborted: _ = abortIncoming(transfer, why: "node \(entry.job.peer) resumed its original")
            case .undecided: continue
            }
        }
    }
}
