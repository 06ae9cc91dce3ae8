import Glibc
import Logging
import Shared

/// The Balancer of one node: samples its load, trades load records with a few random live
/// peers each second, and when the decision core says a job should move, asks the local
/// Migrator to move it, logging every decision with its reasons.
actor BalancerService {
    static let roundInterval: Duration = .seconds(1)
    static let samplesPerRound = 4

    let host: ServiceHost
    let nodeID: UInt32
    let configuration: BalancerConfiguration
    let loadSource: LoadSource
    let peers: PeerClients
    let migrator: RPCClient
    let discovery: RPCClient
    var logger: Logger { host.logger }

    var speed: UInt32
    var policy: NodePolicy
    var window = LoadWindow()
    var own: NodeLoad
    /// The machine's run queue minus the jobs' own runnable threads, smoothed.
    var background: DecayingAverage
    var jobs: [Job] = []
    /// Members Discovery sees alive with this node's map and version.
    var alive: Set<UInt32> = []
    /// The latest decisions with their reasons and outcomes, newest last.
    var decisions: [String] = []
    var migrating = false
    var random = SystemRandomNumberGenerator()
    /// Rounds run so far (I/O counters are asked for every few).
    var rounds = 0
    /// Each local job's file bytes per node since the last refresh, and the totals then.
    var recentIO: [String: [UInt32: UInt64]] = [:]
    var ioTotals: [String: [UInt32: UInt64]] = [:]
    /// Clients of the gateways whose counters are asked, by "address:port".
    var gatewayClients: [String: RPCClient] = [:]

    init(host: ServiceHost, configuration: BalancerConfiguration, speed: UInt32, loadSource: LoadSource) {
        self.host = host
        nodeID = host.node.id
        self.configuration = configuration
        self.loadSource = loadSource
        background = DecayingAverage(decay: configuration.loadDecay)
        let bindAddress = resolveIPv4(host.node.address).first
        peers = PeerClients(loop: host.loop, map: host.map, port: ServiceKind.balancer.port(), authenticator: host.authenticator, bindAddress: bindAddress, logger: host.logger)
        migrator = RPCClient(loop: host.loop, endpoint: .unix(path: "\(host.runDir)/\(ServiceKind.migrator.socketName())"), logger: host.logger)
        discovery = RPCClient(loop: host.loop, endpoint: .unix(path: "\(host.runDir)/\(ServiceKind.discovery.socketName())"), logger: host.logger)
        let saved = BalancerService.loadPolicy(from: "\(host.runDir)/balancer.policy")
        policy = saved?.policy ?? NodePolicy()
        self.speed = saved?.speed ?? speed
        let memory = LoadSampler.memory()
        own = NodeLoad(node: host.node.id, load: 0, cpus: LoadSampler.cpus(), speed: self.speed, freeMemory: memory.free, totalMemory: memory.total)
        registerHandlers()
    }

    private nonisolated func registerHandlers() {
        let server = host.server
        server.register("Balancer.Exchange", on: .pool) { [self] (record: NodeLoad, rpc) in try await exchange(record, caller: rpc.caller) }
        server.register("Balancer.GetLoad", on: .pool) { [self] (_: GetLoadRequest, _) in await loadReport() }
        server.register("Balancer.ClusterLoad", on: .pool) { [self] (_: ClusterLoadRequest, _) in await clusterLoad() }
        server.register("Balancer.Control", on: .pool) { [self] (request: ControlRequest, rpc) in try await control(request, caller: rpc.caller) }
        server.register("Balancer.Place", on: .pool) { [self] (request: PlaceRequest, _) in await place(request) }
        server.register("Balancer.Probe", on: .pool) { [self] (_: GetLoadRequest, rpc) in try await probe(caller: rpc.caller) }
    }

    /// Samples four times a second and runs a round every second until cancelled.
    func run() async {
        logger.info("balancing with speed \(speed), \(own.cpus) CPUs, load from \(loadSource.rawValue), policy \(policy.description)")
        while !Task.isCancelled {
            for _ in 0..<BalancerService.samplesPerRound {
                sampleBackground()
                try? await Task.sleep(for: BalancerService.roundInterval / BalancerService.samplesPerRound)
            }
            await round()
        }
    }

    private func sampleBackground() {
        guard loadSource == .machine else { return }
        let jobsRunnable = jobs.reduce(0) { $0 + $1.demand }
        // This sampler itself is running while it reads /proc/stat.
        background.add(max(0, LoadSampler.runnableProcesses() - 1 - jobsRunnable))
    }

    /// One round: refresh jobs, members and the own record, trade records, maybe move a job.
    func round() async {
        if let list = try? await migrator.call("Migrator.List", ListJobsRequest(cluster: false), returning: ListJobsResponse.self, timeout: .seconds(1)) {
            jobs = list.jobs.filter { $0.where == nodeID && $0.state == .running }
        }
        if let members = try? await discovery.call("Discovery.Members", MembersRequest(), returning: MembersResponse.self, timeout: .seconds(1)) {
            alive = Set(members.members.filter { $0.state == .alive && $0.id != nodeID }.map(\.id))
        }
        let memory = LoadSampler.memory()
        own = NodeLoad(
            node: nodeID, load: jobsLoad() + background.value, cpus: LoadSampler.cpus(), speed: speed,
            freeMemory: memory.free, totalMemory: memory.total, policy: policy, jobs: UInt32(jobs.count), sampledMs: wallClockMs())
        host.metrics.set("omx_load", help: "This node's load over its capacity (cpus x speed / 1000).", own.normalizedLoad)
        guard !policy.quiet else { return }
        await trade()
        window.expire(nowMs: wallClockMs())
        host.metrics.set("omx_load_records", help: "Other nodes' fresh load records this node keeps.", Double(window.records.count))
        guard !migrating else { return }
        rounds += 1
        if rounds % BalancerService.ioRefreshRounds == 0 { await refreshIO() }
        let samples = jobs.map { job in
            JobSample(
                job: job.id, home: job.home, demand: job.demand, rssBytes: job.rssBytes, ageMs: wallClockMs() - min(wallClockMs(), job.startedMs),
                residentMs: wallClockMs() - min(wallClockMs(), job.arrivedMs), stay: job.stay, lock: job.lock, cantmove: !job.cantmove.isEmpty, migrations: job.migrations,
                ioBytes: recentIO[job.id] ?? [:])
        }
        guard let decision = DecisionCore.decide(
            own: own, jobs: samples, peers: window.eligible(alive: alive), configuration: configuration, nowMs: wallClockMs(), random: &random)
        else { return }
        let demand = samples.first { $0.job == decision.job }?.demand ?? 1
        window.assume(demand, movedTo: decision.target)
        record("\(decision)")
        migrating = true
        Task { await carryOut(decision) }
    }

    /// Sends the own record to `configuration.fanout` random live peers and keeps their answers.
    private func trade() async {
        let targets = alive.shuffled(using: &random).prefix(configuration.fanout)
        let record = own
        await withTaskGroup(of: NodeLoad?.self) { group in
            for target in targets {
                group.addTask { [peers] in try? await peers.call(target, "Balancer.Exchange", record, returning: NodeLoad.self, timeoutMs: 500) }
            }
            for await answer in group {
                if let answer { window.insert(answer) }
            }
        }
    }

    private func carryOut(_ decision: Decision) async {
        do {
            let moved = try await migrator.call(
                "Migrator.Migrate", MigrateRequest(job: decision.job, target: decision.target), returning: MigrateResponse.self, timeout: .seconds(900))
            host.metrics.add("omx_balancer_moves_total", help: "Jobs this Balancer decided to move, by outcome.", labels: [("outcome", "moved")])
            record("moved job \(decision.job) to node \(decision.target): frozen \(moved.report.freezeMs) ms, total \(moved.report.totalMs) ms")
        } catch {
            host.metrics.add("omx_balancer_moves_total", help: "Jobs this Balancer decided to move, by outcome.", labels: [("outcome", "failed")])
            record("job \(decision.job) stays: \(error)")
        }
        migrating = false
    }

    func record(_ line: String) {
        logger.info("\(line)")
        decisions.append(line)
        if decisions.count > 20 { decisions.removeFirst(decisions.count - 20) }
    }

    /// `Balancer.Exchange`: keeps the sender's record and answers with ours.
    func exchange(_ record: NodeLoad, caller: Caller) throws -> NodeLoad {
        guard case .remote = caller else { throw RPCError(.permissionDenied, "Balancer.Exchange is for other nodes' Balancers (caller: \(caller))") }
        guard !policy.quiet else { throw RPCError(.unavailable, "Balancer.Exchange: node \(nodeID) is quiet (omx mosctl noquiet)") }
        window.insert(record)
        return own
    }

    /// The CPU the jobs running here ask for: their measured demand, and at least one CPU for
    /// a job younger than three seconds (placed as one, its demand is still being measured).
    private func jobsLoad() -> Double {
        let now = wallClockMs()
        return jobs.reduce(0) { sum, job in sum + (now - min(now, job.arrivedMs) < 3_000 ? max(job.demand, 1) : job.demand) }
    }

    /// `Balancer.Probe`: this node's record as of now (its jobs asked of the Migrator afresh),
    /// for a peer about to place a job.
    func probe(caller: Caller) async throws -> NodeLoad {
        guard case .remote = caller else { throw RPCError(.permissionDenied, "Balancer.Probe is for other nodes' Balancers (caller: \(caller))") }
        guard !policy.quiet else { throw RPCError(.unavailable, "Balancer.Probe: node \(nodeID) is quiet (omx mosctl noquiet)") }
        await refreshOwnLoad()
        return own
    }

    /// Brings the own record's load up to now: the jobs the Migrator runs at this moment.
    private func refreshOwnLoad() async {
        guard let list = try? await migrator.call("Migrator.List", ListJobsRequest(cluster: false), returning: ListJobsResponse.self, timeout: .milliseconds(500))
        else { return }
        jobs = list.jobs.filter { $0.where == nodeID && $0.state == .running }
        own.load = jobsLoad() + background.value
        own.jobs = UInt32(jobs.count)
        own.sampledMs = wallClockMs()
    }

    /// `Balancer.Place`: where a new job should start. This node's load and the
    /// lightest-looking peers' are taken as of now, then the decision core picks.
    func place(_ request: PlaceRequest) async -> PlaceResponse {
        await refreshOwnLoad()
        let candidates = DecisionCore.probeCandidates(
            demand: request.demand, own: own, peers: window.eligible(alive: alive), configuration: configuration, nowMs: wallClockMs())
        await withTaskGroup(of: NodeLoad?.self) { group in
            for candidate in candidates {
                group.addTask { [peers] in try? await peers.call(candidate, "Balancer.Probe", GetLoadRequest(), returning: NodeLoad.self, timeoutMs: 200) }
            }
            for await answer in group {
                if let answer { window.insert(answer) }
            }
        }
        let nowMs = wallClockMs()
        let node = DecisionCore.place(
            demand: request.demand, own: own, peers: window.eligible(alive: alive), configuration: configuration, nowMs: nowMs, random: &random)
        guard node != nodeID, let target = window.records[node] else { return PlaceResponse(node: nodeID, reason: "this node is as light as any it knows of") }
        window.assume(request.demand, movedTo: node)
        let reason = "load \(formatLoad(own.normalizedLoad)) here vs \(formatLoad(target.normalizedLoad)) on node \(node) (per reference CPU)"
        record("start a new job on node \(node): \(reason)")
        return PlaceResponse(node: node, reason: reason)
    }

    /// `Balancer.GetLoad`.
    func loadReport() -> GetLoadResponse {
        GetLoadResponse(load: own, decisions: decisions, peersKnown: UInt32(window.records.count))
    }

    /// `Balancer.ClusterLoad`: every map node's own record, asked directly (for `omx mon`).
    func clusterLoad() async -> ClusterLoadResponse {
        var nodes = [own]
        var unreachable: [UInt32] = []
        await withTaskGroup(of: (UInt32, NodeLoad?).self) { group in
            for node in host.map.nodes.map(\.id) where node != nodeID {
                group.addTask { [peers] in
                    (node, try? await peers.call(node, "Balancer.GetLoad", GetLoadRequest(), returning: GetLoadResponse.self, timeoutMs: 1_000).load)
                }
            }
            for await (node, load) in group {
                if let load { nodes.append(load) } else { unreachable.append(node) }
            }
        }
        return ClusterLoadResponse(nodes: nodes.sorted { $0.node < $1.node }, unreachable: unreachable.sorted())
    }
}
