import CMigrator
import Glibc
import Logging
import Shared

/// The Migrator of one node: starts jobs, keeps their registry, moves them with CRIU and
/// answers for them wherever they run. A job's home node always knows where it is; a call
/// about a job that runs elsewhere is forwarded there by its home.
actor MigratorService {
    let host: ServiceHost
    let nodeID: UInt32
    let store: JobStore
    let spoolDir: String
    let criu: CRIU
    let launcher: JobLauncher
    let peers: PeerClients
    /// This node's Balancer, asked whether guests are blocked.
    let balancer: RPCClient
    /// This node's Discovery, asked which nodes are dead.
    let discovery: RPCClient
    let maxTransferRate: UInt64
    /// How long a node running this home's jobs stays dead and silent before they are lost.
    let lostAfterNs: UInt64
    /// OMX_MIGRATOR_FAULT, a test hook: "corrupt-chunk" damages one image chunk in transit.
    let fault: String
    var logger: Logger { host.logger }

    /// Every job this node keeps: those running here, and those whose home it is.
    var jobs: [String: Job] = [:]
    /// Image transfers being received.
    let incoming = IncomingTransfers()
    /// Jobs restored here, stopped until their source decides, by transfer id, with when
    /// they were restored (monotonic ns; 0 after a restart).
    var pending: [String: (job: Job, restoredNs: UInt64)] = [:]
    /// Guests admitted and not yet recorded here (being restored or started): an expel waits
    /// for them, so that none settles here behind its back.
    var arriving = 0
    /// Expels under way: while one runs, this Migrator admits no guest, whatever the Balancer says.
    var expelling = 0
    /// Ended guest jobs whose home has not heard of it yet.
    var unreportedEnds: Set<String> = []
    /// Jobs that moved here whose home has not heard of it yet.
    var unreportedMoves: Set<String> = []
    /// Guests that left, and where to, for a minute: a call the home forwards here before the
    /// new node's report reached it follows the job (a forwarding address).
    var departed: [String: (node: UInt32, atNs: UInt64)] = [:]
    /// The last CPU sample of each running job, for CPU%.
    var cpuSamples: [String: (ticks: UInt64, atNs: UInt64)] = [:]
    /// Execs inside jobs, for /mfs/lastexec (nil when the kernel refused: not root).
    var execEvents: ExecEvents?
    /// Nodes running this home's jobs that are dead and whose Migrator does not answer, since
    /// when (monotonic ns).
    var silentSince: [UInt32: UInt64] = [:]
    /// Nodes back after their jobs were recorded lost, whose Migrator was asked for them.
    var askedBack: Set<UInt32> = []

    init(host: ServiceHost, stateDir: String, spoolDir: String, criu: CRIU, maxTransferRate: UInt64, lostAfter: Duration) throws {
        self.host = host
        nodeID = host.node.id
        store = try JobStore(stateDir: stateDir)
        self.spoolDir = spoolDir
        self.criu = criu
        launcher = JobLauncher(jobInit: siblingExecutable("omx-jobinit"))
        let bindAddress = resolveIPv4(host.node.address).first
        peers = PeerClients(loop: host.loop, map: host.map, port: ServiceKind.migrator.port(), authenticator: host.authenticator, bindAddress: bindAddress, logger: host.logger)
        balancer = RPCClient(loop: host.loop, endpoint: .unix(path: "\(host.runDir)/\(ServiceKind.balancer.socketName())"), logger: host.logger)
        discovery = RPCClient(loop: host.loop, endpoint: .unix(path: "\(host.runDir)/\(ServiceKind.discovery.socketName())"), logger: host.logger)
        self.maxTransferRate = maxTransferRate
        lostAfterNs = UInt64(lostAfter.milliseconds) * 1_000_000
        fault = getenv("OMX_MIGRATOR_FAULT").map { String(cString: $0) } ?? ""
        try makeDirectories(spoolDir)
        omx_heap_allocations_up_to(8 << 20)
        if omx_become_child_subreaper() != 0 {
            host.logger.warning("cannot become child subreaper (\(String(cString: strerror(errno)))): exit statuses of restored jobs may be lost")
        }
        registerHandlers()
    }

    private nonisolated func registerHandlers() {
        let server = host.server
        server.register("Migrator.Run", on: .pool) { [self] (request: RunRequest, rpc) in try await run(request, caller: rpc.caller) }
        server.register("Migrator.Start", on: .pool) { [self] (request: StartRequest, rpc) in try await startGuest(request.job, caller: rpc.caller) }
        server.register("Migrator.List", on: .pool) { [self] (request: ListJobsRequest, rpc) in
            disclose(await list(cluster: request.cluster), to: rpc.caller, level: OMXConfig.active.disclosure)
        }
        server.register("Migrator.Kill", on: .pool) { [self] (request: KillRequest, rpc) in try await kill(request, caller: rpc.caller) }
        server.register("Migrator.Wait", on: .pool) { [self] (request: WaitRequest, rpc) in try await wait(request, caller: rpc.caller) }
        server.register("Migrator.ReadLog", on: .pool) { [self] (request: ReadLogRequest, rpc) in try await readLog(request, caller: rpc.caller) }
        server.register("Migrator.Update", on: .pool) { [self] (job: Job, rpc) in try await update(job, caller: rpc.caller) }
        server.register("Migrator.Migrate", on: .pool) { [self] (request: MigrateRequest, rpc) in try await migrate(request, caller: rpc.caller) }
        server.register("Migrator.Expel", on: .pool) { [self] (_: ExpelRequest, rpc) in try await expel(caller: rpc.caller) }
        server.register("Migrator.Bring", on: .pool) { [self] (_: BringRequest, rpc) in try await bring(caller: rpc.caller) }
        server.register("Migrator.SetFlags", on: .pool) { [self] (request: FlagsRequest, rpc) in try await setFlags(request, caller: rpc.caller) }
        server.register("Migrator.LastExec", on: .pool) { [self] (request: LastExecRequest, rpc) in try await lastExec(request, caller: rpc.caller) }
        server.register("Migrator.Receive", on: .pool) { [self] (begin: TransferBegin, rpc) in try await receive(begin, caller: rpc.caller) }
        server.register("Migrator.Chunk", on: .pool) { [self] request in
            try MigratorService.requirePeer(request.caller, "Migrator.Chunk")
            do {
                _ = try incoming.write(request.body, node: nodeID)
            } catch let error as RPCError {
                if error.status != .aborted { host.logger.warning("transfer dropped: \(error)") }
                throw error
            }
            return Empty().wire()
        }
        // The steps of a migration between nodes: for other nodes' Migrators only, naming
        // transfers that can be file names.
        server.register("Migrator.Restore", on: .pool) { [self] (ref: TransferRef, rpc) in
            try await restore(MigratorService.peerTransfer(ref, rpc.caller, "Migrator.Restore"))
        }
        server.register("Migrator.Commit", on: .pool) { [self] (ref: TransferRef, rpc) in
            try await commit(MigratorService.peerTransfer(ref, rpc.caller, "Migrator.Commit"), report: ref.report)
        }
        server.register("Migrator.Abort", on: .pool) { [self] (ref: TransferRef, rpc) in
            await abortIncoming(try MigratorService.peerTransfer(ref, rpc.caller, "Migrator.Abort"), why: "the source aborted")
        }
        server.register("Migrator.Outcome", on: .pool) { [self] (ref: TransferRef, rpc) in
            await outcome(of: try MigratorService.peerTransfer(ref, rpc.caller, "Migrator.Outcome"))
        }
    }

    /// Refuses `caller` unless it is another node's Migrator (over TCP, signed with the key).
    nonisolated static func requirePeer(_ caller: Caller, _ method: String) throws {
        guard case .remote = caller else { throw RPCError(.permissionDenied, "\(method) is for other nodes' Migrators (caller: \(caller))") }
    }

    /// A transfer id as it names files here: not empty, no "/", not starting with ".".
    nonisolated static func checkTransfer(_ transfer: String, _ method: String) throws {
        guard !transfer.isEmpty, !transfer.contains("/"), !transfer.hasPrefix(".") else {
            throw RPCError(.invalidArgument, "\(method): bad transfer id \"\(transfer)\"")
        }
    }

    /// The transfer `ref` names, when another node's Migrator asks.
    nonisolated static func peerTransfer(_ ref: TransferRef, _ caller: Caller, _ method: String) throws -> String {
        try requirePeer(caller, method)
        try checkTransfer(ref.transfer, method)
        return ref.transfer
    }

    // MARK: Jobs

    /// `Migrator.Run`: a new job whose home is this node, started here or on `request.node`.
    func run(_ request: RunRequest, caller: Caller) async throws -> Job {
        var job = Job()
        switch caller {
        case let .local(pid, uid, gid, groups):
            job.uid = uid
            job.gid = gid
            job.groups = groups
            // As `nice omx run` would have it: the caller's own nice value.
            job.nice = ProcStat(pid: pid)?.nice ?? 0
        case .remote:
            job.uid = request.uid
            job.gid = request.gid
            job.groups = request.groups
            job.nice = request.nice
        }
        job.home = nodeID
        job.where = request.node == 0 ? nodeID : request.node
        // Placement matters most on a loaded node, where the Balancer answers slowest: it gets
        // two seconds (it answers in milliseconds otherwise).
        if request.node == 0 && !request.stay && !request.lock,
           let placed = try? await balancer.call("Balancer.Place", PlaceRequest(demand: 1), returning: PlaceResponse.self, timeout: .seconds(2)),
           host.map.node(id: placed.node) != nil {
            // Starting where the Balancer would soon move it anyway costs nothing.
            job.where = placed.node
        }
        guard host.map.node(id: job.where) != nil else { throw RPCError(.notFound, "Migrator.Run: node \(job.where) is not in the map") }
        job.argv = request.argv
        job.env = request.env
        job.cwd = request.cwd
        job.name = request.name
        job.stay = request.stay
        job.lock = request.lock
        if job.where == nodeID { try JobLauncher.validate(job) }
        job.id = "\(nodeID).\(try store.nextJobNumber())"
        job.spool = "\(spoolDir)/\(job.id)"
        if job.where == nodeID {
            try await launcher.launch(&job)
        } else {
            do {
                job = try await peers.call(job.where, "Migrator.Start", StartRequest(job: job), returning: Job.self, timeoutMs: 15_000)
            } catch let error as RPCError where request.node == 0 && !error.outcomeUnknown {
                // The Balancer's pick could not take it: start it here after all.
                logger.notice("job \(job.id): node \(job.where) could not start it (\(error)); starting it here")
                job.where = nodeID
                try JobLauncher.validate(job)
                try await launcher.launch(&job)
            } catch let error as RPCError where error.outcomeUnknown {
                // Started here too, it might run twice: the node's own record will come home
                // with its next news, if it has one.
                throw RPCError(error.status, "Migrator.Run: node \(job.where) did not say whether it started job \(job.id) (\(error.message)); it may be running there: see omx mps")
            }
        }
        // It runs now: a registry that cannot be written is logged, not answered as a failure
        // (a caller told it failed would start it again).
        keep(job)
        host.metrics.add("omx_jobs_started_total", help: "Jobs whose home is this node, started here or elsewhere.")
        logger.info("job \(job.id) started on node \(job.where) as pid \(job.pid) for uid \(job.uid): \(job.argv.joined(separator: " "))")
        return job
    }

    /// `Migrator.Start`: the job's home asks this node to run it. An error means it does not
    /// run here.
    func startGuest(_ request: Job, caller: Caller) async throws -> Job {
        try MigratorService.requirePeer(caller, "Migrator.Start")
        // The id and spool name paths this node writes and removes as root (the spool is the
        // home's: the same path on every node of a real cluster).
        let spoolParts = request.spool.split(separator: "/")
        guard try homeNode(of: request.id) == request.home, request.spool.hasPrefix("/"), spoolParts.last.map(String.init) == request.id,
              !spoolParts.contains(".."), !spoolParts.contains(".")
        else {
            throw RPCError(.invalidArgument, "Migrator.Start: job \(request.id) (home \(request.home)) with spool \(request.spool): expected an absolute DIR/\(request.id)")
        }
        var job = request
        job.where = nodeID
        arriving += 1
        defer { arriving -= 1 }
        try await admitGuest(job, method: "Migrator.Start")
        try JobLauncher.validate(job)
        try await launcher.launch(&job)
        do {
            try store.save(job)
        } catch {
            // Unrecorded, the job would run behind its home's back (which starts it elsewhere).
            Glibc.kill(job.pid, SIGKILL)
            throw RPCError(.internal, "Migrator.Start: job \(job.id) started but could not be recorded, so it was stopped: \(error)")
        }
        jobs[job.id] = job
        logger.info("guest job \(job.id) (home node \(job.home)) started as pid \(job.pid)")
        return job
    }

    /// What a local user who is not root may see of other users' jobs (the configuration's
    /// disclosure level); root and the cluster's nodes see everything.
    nonisolated func disclose(_ answer: ListJobsResponse, to caller: Caller, level: OMXConfig.Disclosure) -> ListJobsResponse {
        guard case let .local(_, uid, _, _) = caller, uid != 0 else { return answer }
        var shown = answer
        shown.jobs = answer.jobs.compactMap { job in
            guard job.uid != uid else { return job }
            guard level != .ownJobsOnly else { return nil }
            // Another user's environment and directory are never shown: they may hold secrets.
            var hidden = job
            hidden.env = []
            hidden.cwd = ""
            if level == .withoutCommands {
                hidden.argv = []
                hidden.name = ""
            }
            return hidden
        }
        return shown
    }

    /// `Migrator.List`: the jobs running here (with fresh figures) and this home's other jobs;
    /// with `cluster`, every node's, each job once: from where it runs, else from its home.
    func list(cluster: Bool) async -> ListJobsResponse {
        let own = jobs.values.sorted { jobOrder($0.id, $1.id) }
        guard cluster else { return ListJobsResponse(jobs: own) }
        var reports: [(node: UInt32, jobs: [Job])] = [(nodeID, own)]
        var unreachable: [UInt32] = []
        await withTaskGroup(of: (UInt32, [Job]?).self) { group in
            for node in host.map.nodes.map(\.id) where node != nodeID {
                group.addTask { [peers] in
                    (node, try? await peers.call(node, "Migrator.List", ListJobsRequest(cluster: false), returning: ListJobsResponse.self, timeoutMs: 1_500).jobs)
                }
            }
            for await (node, answer) in group {
                if let answer { reports.append((node, answer)) } else { unreachable.append(node) }
            }
        }
        return ListJobsResponse(jobs: mergeJobReports(reports), unreachable: unreachable.sorted())
    }

    /// `Migrator.Kill`: signals the job here, or forwards to where it runs. A job being moved
    /// away is signalled once the move settled, wherever it then runs (its frozen original
    /// would lose a signal, or be woken in the middle of its checkpoint).
    func kill(_ request: KillRequest, caller: Caller) async throws -> Job {
        let signal = request.signal == 0 ? SIGTERM : request.signal
        guard signal > 0 && signal < 65 else { throw RPCError(.invalidArgument, "Migrator.Kill: no signal \(request.signal)") }
        await awaitSettled(request.job)
        if let node = try forwardTarget(request.job, caller: caller) {
            try await authorizeForwarded(request.job, caller: caller, method: "Migrator.Kill")
            return try await peers.call(node, "Migrator.Kill", request, returning: Job.self, timeoutMs: 900_000)
        }
        let job = try runningHere(request.job, caller: caller, method: "Migrator.Kill")
        switch signal {
        case SIGSTOP, SIGCONT:
            for pid in ProcessTree.members(of: job.pid) { Glibc.kill(pid, signal) }
        default:
            // The init forwards catchable signals to the command; SIGKILL ends the namespace.
            Glibc.kill(job.pid, signal)
        }
        logger.info("job \(job.id): sent signal \(signal) (asked by \(caller))")
        return job
    }

    /// `Migrator.SetFlags` (`omx lock` / `omx unlock`): changes a job's lock and stay flags
    /// where it runs, and at its home; for a job being moved away, once the move settled (the
    /// move's own record would overwrite them).
    func setFlags(_ request: FlagsRequest, caller: Caller) async throws -> Job {
        await awaitSettled(request.job)
        if let node = try forwardTarget(request.job, caller: caller) {
            try await authorizeForwarded(request.job, caller: caller, method: "Migrator.SetFlags")
            let job = try await peers.call(node, "Migrator.SetFlags", request, returning: Job.self, timeoutMs: 900_000)
            if var home = jobs[job.id], home.home == nodeID {
                home.lock = job.lock
                home.stay = job.stay
                keep(home)
            }
            return job
        }
        var job = try runningHere(request.job, caller: caller, method: "Migrator.SetFlags")
        if let lock = request.lock { job.lock = lock }
        if let stay = request.stay { job.stay = stay }
        keep(job)
        logger.info("job \(job.id): lock \(job.lock), stay \(job.stay) (asked by \(caller))")
        return job
    }

    /// `Migrator.Wait`: the job once it has ended, or as it is when `timeoutMs` ran out.
    func wait(_ request: WaitRequest, caller: Caller) async throws -> Job {
        let home = try homeNode(of: request.job)
        if home != nodeID {
            guard caller.isClient else { throw RPCError(.notFound, "Migrator.Wait: node \(nodeID) is not the home of job \(request.job)") }
            try await authorizeForwarded(request.job, caller: caller, method: "Migrator.Wait")
            return try await peers.call(home, "Migrator.Wait", request, returning: Job.self, timeoutMs: UInt64(request.timeoutMs) + 5_000)
        }
        let deadline = monotonicNs() + UInt64(request.timeoutMs) * 1_000_000
        if let job = jobs[request.job] { try authorize(caller, for: job, method: "Migrator.Wait") }
        while true {
            guard let job = jobs[request.job] else { throw RPCError(.notFound, "Migrator.Wait: node \(nodeID) has no job \(request.job)") }
            if job.state == .exited || monotonicNs() >= deadline { return job }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// `Migrator.ReadLog`: the job's stdout or stderr from an offset.
    func readLog(_ request: ReadLogRequest, caller: Caller) async throws -> ReadLogResponse {
        guard let job = jobs[request.job] else {
            let home = try homeNode(of: request.job)
            guard home != nodeID, caller.isClient else { throw RPCError(.notFound, "Migrator.ReadLog: node \(nodeID) has no job \(request.job)") }
            try await authorizeForwarded(request.job, caller: caller, method: "Migrator.ReadLog")
            return try await peers.call(home, "Migrator.ReadLog", request, returning: ReadLogResponse.self, timeoutMs: 10_000)
        }
        try authorize(caller, for: job, method: "Migrator.ReadLog")
        let stream = request.stream.isEmpty ? "stdout" : request.stream
        guard stream == "stdout" || stream == "stderr" else { throw RPCError(.invalidArgument, "Migrator.ReadLog: stream \"\(stream)\" is neither stdout nor stderr") }
        guard request.offset <= UInt64(Int64.max) else { throw RPCError(.invalidArgument, "Migrator.ReadLog: offset \(request.offset) is past any file") }
        let path = "\(job.spool)/\(stream)"
        // Never a symlink, a fifo or a device swapped in (the spool of a job started by an
        // older version is its user's).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw RPCError(.notFound, "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw RPCError(.failedPrecondition, "\(path) is not a regular file") }
        let size = UInt64(info.st_size)
        let wanted = Int(min(UInt64(min(request.maxBytes == 0 ? 1 << 20 : request.maxBytes, 1 << 20)), size > request.offset ? size - request.offset : 0))
        var data = [UInt8](repeating: 0, count: wanted)
        let count = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(request.offset)) }
        data.removeLast(wanted - max(count, 0))
        return ReadLogResponse(data: data, size: size, ended: job.state == .exited)
    }

    /// `Migrator.Update`: a job whose home is here moved or ended elsewhere. A record with
    /// fewer migrations than the one kept is stale and ignored.
    func update(_ job: Job, caller: Caller) throws -> Empty {
        try MigratorService.requirePeer(caller, "Migrator.Update")
        guard job.home == nodeID else { throw RPCError(.failedPrecondition, "Migrator.Update: node \(nodeID) is not the home of job \(job.id)") }
        try takeNews(job)
        return Empty()
    }

    /// Keeps a newer record of one of this home's jobs, as the node it runs on reported it;
    /// older news (fewer migrations) is ignored, and so is any news of a job known to have
    /// ended (a late report of a move must not bring it back to life), unless the end was a
    /// guess (lost with its node, which turned out to hold it still).
    func takeNews(_ job: Job) throws {
        if let known = jobs[job.id] {
            if job.migrations < known.migrations { return }
            if known.state == .exited && job.state != .exited && !known.exit.hasPrefix(MigratorService.lostPrefix) { return }
            if known.where == nodeID && known.state != .exited && job.where != nodeID && job.migrations == known.migrations { return }
        }
        var record = job
        if record.lastMigration == nil { record.lastMigration = jobs[job.id]?.lastMigration }
        jobs[job.id] = record
        try store.save(record)
        logger.info(job.state == .exited ? "job \(job.id) ended on node \(job.where): \(job.exit)" : "job \(job.id) now runs on node \(job.where) as pid \(job.pid)")
    }

    /// `Migrator.Outcome`: what this node decided for a migration it sent.
    func outcome(of transfer: String) -> OutcomeResponse {
        OutcomeResponse(outcome: store.outcome(of: transfer))
    }
}
