import Glibc
import Shared

/// Moving a job from here to another node. The source decides: it records "committed" only
/// after the target has restored the job (stopped), then kills its frozen original and lets
/// the target run; any failure before that records "aborted" and resumes the original, and a
/// target that restored a copy drops it. So a job is never lost and never runs twice.
extension MigratorService {
    /// `Migrator.Migrate`: moves the job here to `request.target`, or forwards to where it runs.
    /// A request that arrives while the job is leaving (the Balancer moving it) waits for that
    /// move to settle and then follows the job.
    func migrate(_ request: MigrateRequest, caller: Caller) async throws -> MigrateResponse {
        await awaitSettled(request.job)
        if let node = try forwardTarget(request.job, caller: caller) {
            try await authorizeForwarded(request.job, caller: caller, method: "Migrator.Migrate")
            let moved = try await peers.call(node, "Migrator.Migrate", request, returning: MigrateResponse.self, timeoutMs: 900_000)
            // The home learns at once where its job went: a call right after this one is
            // forwarded there, not to where the job was (the source's own report may come later).
            if moved.job.home == nodeID { try? takeNews(moved.job) }
            return moved
        }
        let job = try runningHere(request.job, caller: caller, method: "Migrator.Migrate")
        return try await migrateOut(job, to: request.target == 0 ? job.home : request.target)
    }

    /// Waits while job `id` is being moved away from here (as long as a migration may take).
    func awaitSettled(_ id: String) async {
        let deadline = monotonicNs() + 900_000_000_000
        while let job = jobs[id], job.where == nodeID, job.state == .migrating, monotonicNs() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Checkpoints `original`, streams its images to `target`, has them restored there, and
    /// commits or rolls back. The record is read afresh (the caller may have waited since it
    /// read `original`): only the same process, still running here and not already leaving,
    /// moves, so two moves of one job never overlap.
    func migrateOut(_ original: Job, to target: UInt32) async throws -> MigrateResponse {
        let route = "job \(original.id) from node \(nodeID) to node \(target)"
        guard var job = jobs[original.id], job.where == nodeID, job.pid == original.pid, job.pidStartTicks == original.pidStartTicks else {
            throw RPCError(.failedPrecondition, "cannot move \(route): it moved or ended meanwhile")
        }
        guard job.state == .running else { throw RPCError(.failedPrecondition, "cannot move \(route): it is \(job.state.rawValue)") }
        guard target != nodeID else { throw RPCError(.failedPrecondition, "job \(job.id) already runs on node \(nodeID)") }
        guard host.map.node(id: target) != nil else { throw RPCError(.notFound, "cannot move \(route): node \(target) is not in the map") }
        guard !job.lock else { throw RPCError(.failedPrecondition, "cannot move \(route): the job is locked (omx unlock \(job.id))") }
        if let reason = ProcessTree.cantmove(root: job.pid, runDir: host.runDir) {
            job.cantmove = reason
            jobs[job.id] = job
            throw RPCError(.failedPrecondition, "cannot move \(route): cantmove: \(reason)")
        }
        let transfer = "\(job.id)-\(wallClockMs())"
        let directory = store.imagesDir(transfer)
        defer { removeTree(directory) }
        var report = MigrationReport()
        report.from = nodeID
        report.to = target
        report.mode = "stop-and-copy"
        let started = monotonicNs()
        job.execNodes = liveExecNodes(of: job)
        job.stoppedPIDs = stoppedMembers(of: job.pid)
        job.state = .migrating
        job.transfer = transfer
        job.peer = target
        keep(job)
        logger.info("migrating \(route) (transfer \(transfer))")

        let restored: RestoreResponse
        var frozeAt = started
        var phases: [(String, UInt64)] = []
        func phase(_ name: String, since: UInt64) { phases.append((name, (monotonicNs() - since) / 1_000_000)) }
        do {
            try makeDirectories(directory)
            frozeAt = monotonicNs()
            try await criu.dump(pid: job.pid, into: directory)
            phase("dump", since: frozeAt)
            // Checked again now that the tree is stopped: a lock it took through /mfs since
            // the first check would not follow it.
            if let reason = ProcessTree.cantmove(root: job.pid, runDir: host.runDir) {
                job.cantmove = reason  // the Balancer does not pick it again meanwhile
                throw RPCError(.failedPrecondition, "cantmove since the move began: \(reason)")
            }
            let sending = monotonicNs()
            let files = ImageSender.files(in: directory).filter { !$0.path.hasSuffix(".log") && !$0.path.hasSuffix(".out") }
            var sent = job
            sent.state = .running
            sent.transfer = ""
            sent.peer = 0
            _ = try await peers.call(target, "Migrator.Receive", TransferBegin(transfer: transfer, job: sent, files: files, source: nodeID), returning: Empty.self, timeoutMs: 10_000)
            let sender = ImageSender(peers: peers, target: target, transfer: transfer, maxBytesPerSecond: maxTransferRate, corruptOneChunk: fault == "corrupt-chunk")
            report.bytes = try await sender.send(files, from: directory)
            phase("send", since: sending)
            let restoring = monotonicNs()
            restored = try await peers.call(target, "Migrator.Restore", TransferRef(transfer: transfer), returning: RestoreResponse.self, timeoutMs: 300_000)
            phase("restore", since: restoring)
            try store.recordOutcome(transfer, .committed)
        } catch {
            try? store.recordOutcome(transfer, .aborted)
            resume(job.pid, keepingStopped: job.stoppedPIDs)
            job.stoppedPIDs = []
            job.state = .running
            job.transfer = ""
            job.peer = 0
            keep(job)
            _ = try? await peers.call(target, "Migrator.Abort", TransferRef(transfer: transfer), returning: Empty.self, timeoutMs: 2_000)
            let status = (error as? RPCError)?.status ?? .internal
            countMigration(outcome: "aborted", report: nil)
            logger.warning("migration of \(route) failed; the job runs on here: \(error)")
            throw RPCError(status == .ok ? .internal : status, "migration of \(route) failed; the job runs on at node \(nodeID): \(error)")
        }

        killTree(job.pid)
        let frozenUntil = monotonicNs()
        report.freezeMs = (frozenUntil - frozeAt) / 1_000_000
        report.totalMs = (frozenUntil - started) / 1_000_000
        var committed = false
        for attempt in 0..<3 where !committed {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(200)) }
            committed = (try? await peers.call(target, "Migrator.Commit", TransferRef(transfer: transfer, report: report), returning: Empty.self, timeoutMs: 5_000)) != nil
        }
        if !committed { logger.warning("node \(target) did not confirm the commit of \(transfer); it will ask for the outcome") }
        // The job was stopped until the target resumed it on Commit.
        report.freezeMs = (monotonicNs() - frozeAt) / 1_000_000
        report.totalMs = (monotonicNs() - started) / 1_000_000
        job.where = target
        job.pid = restored.pid
        job.pidStartTicks = restored.pidStartTicks
        job.state = .running
        job.transfer = ""
        job.peer = 0
        job.migrations += 1
        job.lastMigration = report
        job.stoppedPIDs = []
        job.cpuPercent = 0
        cpuSamples[job.id] = nil
        if job.home == nodeID {
            keep(job)
        } else {
            jobs[job.id] = nil
            store.remove(job.id)
            let now = monotonicNs()
            departed = departed.filter { now - $0.value.atNs < 60_000_000_000 }
            departed[job.id] = (target, now)
        }
        countMigration(outcome: "committed", report: report)
        let breakdown = phases.map { "\($0.0) \($0.1) ms" }.joined(separator: ", ")
        logger.info("migrated \(route): pid \(original.pid) -> \(restored.pid), \(report.bytes) bytes, frozen \(report.freezeMs) ms (\(breakdown)), total \(report.totalMs) ms")
        return MigrateResponse(job: job, report: report)
    }

    /// `Migrator.Expel` (`omx mosctl expel`): sends every guest job home, or to another node
    /// when home cannot take it.
    func expel(caller: Caller) async throws -> ExpelResponse {
        if case let .local(_, uid, _, _) = caller, uid != 0 { throw RPCError(.permissionDenied, "Migrator.Expel: only root may expel guests (caller uid \(uid))") }
        return await sendGuestsAway(waitingForArrivals: MigratorService.expelWaitsForArrivals)
    }

    /// `Migrator.Bring` (`omx mosctl bring`): brings every job whose home is here back home.
    func bring(caller: Caller) async throws -> ExpelResponse {
        if case let .local(_, uid, _, _) = caller, uid != 0 { throw RPCError(.permissionDenied, "Migrator.Bring: only root may bring jobs home (caller uid \(uid))") }
        var moved: [String] = []
        var failed: [String] = []
        let away = jobs.values.filter { $0.home == nodeID && $0.where != nodeID && $0.state == .running }.sorted { jobOrder($0.id, $1.id) }
        for job in away {
            do {
                _ = try await peers.call(job.where, "Migrator.Migrate", MigrateRequest(job: job.id, target: nodeID), returning: MigrateResponse.self, timeoutMs: 900_000)
                moved.append("\(job.id) -> \(nodeID)")
            } catch {
                failed.append("\(job.id): \(error)")
            }
        }
        if !away.isEmpty { logger.notice("brought \(moved.count) of \(away.count) job(s) home\(failed.isEmpty ? "" : "; stayed: \(failed.joined(separator: " | "))")") }
        return ExpelResponse(moved: moved, failed: failed)
    }

    /// How long `omx mosctl expel` waits for guests admitted before it to run here (a stopping
    /// Migrator waits less: its stop has a budget, and the guests already running come first).
    static let expelWaitsForArrivals: Duration = .seconds(60)
    static let stopWaitsForArrivals: Duration = .seconds(10)

    /// Guests admitted here that do not run yet: being restored or started, or restored and
    /// waiting for their source's word.
    var guestsArriving: Int { arriving + pending.values.filter { $0.job.home != nodeID }.count }

    /// Moves every guest job running here away: home first, else the other nodes in id order.
    /// No guest is admitted meanwhile; those admitted before (being restored or started, or
    /// restored and waiting for their source's word) leave too once they run, for as long as
    /// `waitingForArrivals`.
    @discardableResult
    func sendGuestsAway(waitingForArrivals: Duration) async -> ExpelResponse {
        var moved: [String] = []
        var failed: [String] = []
        var tried: Set<String> = []
        expelling += 1
        defer { expelling -= 1 }
        logger.notice("sending the guest jobs away; no guest is admitted meanwhile")
        let waitUntil = monotonicNs() + UInt64(waitingForArrivals.milliseconds) * 1_000_000
        while true {
            let guests = jobs.values.filter { $0.where == nodeID && $0.home != nodeID && ($0.state == .running || $0.state == .migrating) && !tried.contains($0.id) }
                .sorted { jobOrder($0.id, $1.id) }
            for guest in guests {
                tried.insert(guest.id)
                switch await sendAway(guest.id) {
                case let .moved(target): moved.append("\(guest.id) -> \(target)")
                case let .stayed(reasons): failed.append("\(guest.id): \(reasons)")
                case .ended: break
                }
            }
            guard guests.isEmpty else { continue }
            guard guestsArriving > 0, monotonicNs() < waitUntil else { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let late = guestsArriving
        if late > 0 {
            failed.append("\(late) guest job(s) still arriving after \(waitingForArrivals) (restored or started here, not yet running); expel again once they run")
        }
        if !tried.isEmpty || late > 0 { logger.notice("expelled \(moved.count) of \(tried.count) guest job(s)\(failed.isEmpty ? "" : "; stayed: \(failed.joined(separator: " | "))")") }
        return ExpelResponse(moved: moved, failed: failed)
    }

    private enum Departure {
        case moved(to: UInt32)
        case stayed(String)
        case ended
    }

    /// Where guest `id` went, once any move of it (the Balancer's, a user's) settled; nil
    /// while it still runs here.
    private func settled(_ id: String) async -> Departure? {
        await awaitSettled(id)
        guard let job = jobs[id] else { return departed[id].map { .moved(to: $0.node) } ?? .ended }
        guard job.state == .running else { return .ended }
        return job.where == nodeID ? nil : .moved(to: job.where)
    }

    /// Moves guest `id` home, else to the other nodes in id order.
    private func sendAway(_ id: String) async -> Departure {
        if let gone = await settled(id) { return gone }
        guard let first = jobs[id] else { return .ended }
        let candidates = [first.home] + host.map.nodes.map(\.id).filter { $0 != first.home && $0 != nodeID }
        var reasons: [String] = []
        for target in candidates {
            guard (try? await peers.call(target, "Health", HealthRequest(), returning: HealthResponse.self, timeoutMs: 1_000)) != nil else {
                reasons.append("node \(target) is down")
                continue
            }
            // Each try takes the record as it is now: another move may have begun or ended
            // while this one waited.
            if let gone = await settled(id) { return gone }
            guard let job = jobs[id] else { return .ended }
            do {
                _ = try await migrateOut(job, to: target)
                return .moved(to: target)
            } catch {
                reasons.append("\(error)")
                if let current = jobs[job.id], !current.cantmove.isEmpty || current.lock { break }
            }
        }
        return .stayed(reasons.joined(separator: "; "))
    }
}

extension MigratorService {
    /// Counts an outgoing migration; a committed one also records its freeze, total time and bytes.
    func countMigration(outcome: String, report: MigrationReport?) {
        host.metrics.add("omx_migrations_total", help: "Migrations this node sent, by outcome.", labels: [("outcome", outcome)])
        guard let report else { return }
        host.metrics.observe("omx_migration_freeze_seconds", help: "How long a migrated job was stopped.", Double(report.freezeMs) / 1000)
        host.metrics.observe("omx_migration_total_seconds", help: "How long a migration took from start to commit.", Double(report.totalMs) / 1000)
        host.metrics.add("omx_migration_sent_bytes_total", help: "Checkpoint image bytes sent to other nodes.", Double(report.bytes))
    }
}
