import Glibc
import Logging
import Shared

/// The Discovery service of one node: runs the failure detector (`Membership`) over the RPC
/// runtime, keeps the registry of this node's services, and answers the Discovery API.
///
/// Every method runs on the host's loop thread (handlers are placed on the loop and the probe
/// loop prefers the loop executor), so the state needs no lock.
public final class DiscoveryService: @unchecked Sendable {
    /// How long a registration lasts unless the caller asks otherwise.
    public static let defaultLeaseMs: UInt32 = 3_000

    let host: ServiceHost
    let configuration: SWIMConfiguration
    private var logger: Logger { host.logger }
    private var map: ClusterMap
    private var mapText: String
    private(set) var membership: Membership
    private let peers: PeerClients
    private var registry = ServiceRegistry()
    private var random = SystemRandomNumberGenerator()
    private var running = true
    private var syncEveryRounds: Int { max(1, Int(10_000 / configuration.probeIntervalMs)) }

    /// Prepares the service on `host` and registers its methods; `run()` starts it.
    public init(host: ServiceHost, configuration: SWIMConfiguration = SWIMConfiguration()) {
        self.host = host
        self.configuration = configuration
        map = host.map
        mapText = (try? readTextFile(host.map.source)) ?? host.map.canonicalText
        membership = Membership(
            selfID: host.node.id, nodeIDs: host.map.nodes.map(\.id), mapDigest: host.map.digest, version: omxVersion,
            incarnation: wallClockMs(), configuration: configuration)
        var bindAddress: String?
        var port = ServiceKind.discovery.port()
        if case let .tcp(address, tcpPort) = host.tcpEndpoint {
            bindAddress = address
            port = tcpPort
        }
        peers = PeerClients(loop: host.loop, map: host.map, port: port, authenticator: host.authenticator, bindAddress: bindAddress, logger: host.logger)
        registerMethods()
    }

    private var selfID: UInt32 { membership.selfID }

    // MARK: Running

    /// Joins the cluster and probes a member every round until `stop()`.
    public func run() async {
        await join(everyone: true)
        var round = 0
        while running {
            let roundStart = monotonicNs()
            round += 1
            let now = wallClockMs()
            for id in membership.tick(nowMs: now) {
                countChange(to: .dead)
                logger.info("node \(id) is dead: suspect for \(suspicionTimeoutMs(members: membership.members.count, configuration)) ms without refuting")
            }
            if registry.expire(nowMs: now) { membership.setServices(registry.instances) }
            if let target = membership.nextProbeTarget(using: &random) { await probe(target) }
            if round % syncEveryRounds == 0 { await join(everyone: false) }
            let elapsed = (monotonicNs() - roundStart) / 1_000_000
            if elapsed < configuration.probeIntervalMs {
                try? await Task.sleep(for: .milliseconds(Int64(configuration.probeIntervalMs - elapsed)))
            }
        }
    }

    /// Leaves the cluster gracefully (the others mark this node left) and stops probing.
    public func stop() async {
        running = false
        membership.leave()
        await announce()
        await peers.close()
    }

    /// Exchanges full state with members: all of them (on start, after a new map), or one at
    /// random (anti-entropy, every ten seconds).
    private func join(everyone: Bool) async {
        let others = map.nodes.map(\.id).filter { $0 != selfID }
        let live = others.filter { membership.members[$0]?.state == .alive }
        let targets = everyone ? Array(others.shuffled(using: &random).prefix(64)) : Array(live.shuffled(using: &random).prefix(1))
        await withTaskGroup(of: Void.self) { group in
            for target in targets {
                group.addTask(executorPreference: host.loop) { [self] in
                    let request = Gossip(fromNode: selfID, targetNode: target, updates: membership.fullState)
                    if let answer = try? await peers.call(target, "Discovery.Sync", request, returning: Gossip.self, timeoutMs: 1_000) {
                        received(answer, from: target)
                    }
                }
            }
        }
    }

    /// Tells every live member this node's news at once (used when leaving).
    private func announce() async {
        let live = membership.members.values.filter { $0.id != selfID && ($0.state == .alive || $0.state == .suspect) }.map(\.id)
        await withTaskGroup(of: Void.self) { group in
            for target in live {
                group.addTask(executorPreference: host.loop) { [self] in
                    _ = try? await peers.call(target, "Discovery.Sync", Gossip(fromNode: selfID, targetNode: target, updates: [membership.own.update]), returning: Gossip.self, timeoutMs: 500)
                }
            }
        }
    }

    // MARK: The failure detector

    private func outgoing(to target: UInt32) -> [MemberUpdate] {
        membership.outgoing(to: target)
    }

    /// Counts a member's move to `state` as this node saw it, and the members per state.
    private func countChange(to state: MemberState) {
        host.metrics.add("omx_membership_changes_total", help: "Members that changed state, by new state, as this node saw it.", labels: [("state", "\(state)")])
        for state in MemberState.allCases {
            let count = membership.members.values.filter { $0.state == state }.count
            host.metrics.set("omx_members", help: "Members of the cluster by state, as this node sees them.", labels: [("state", "\(state)")], Double(count))
        }
    }

    private func received(_ gossip: Gossip, from sender: UInt32) {
        let now = wallClockMs()
        membership.heardFrom(sender, nowMs: now)
        for id in membership.apply(gossip.updates, nowMs: now) {
            guard let member = membership.members[id] else { continue }
            countChange(to: member.state)
            logger.info("node \(id) is \(member.state) (incarnation \(member.incarnation), heard from node \(sender))")
        }
    }

    /// One SWIM probe: direct, then through helpers; a member that answers neither is suspect.
    private func probe(_ target: UInt32) async {
        do {
            let ack = try await peers.call(target, "Discovery.Probe", Gossip(fromNode: selfID, targetNode: target, updates: outgoing(to: target)), returning: Gossip.self, timeoutMs: configuration.probeTimeoutMs)
            received(ack, from: target)
            return
        } catch {
            logger.debug("direct probe of node \(target) failed: \(error)")
        }
        let helpers = membership.indirectHelpers(for: target, count: configuration.indirectProbes, using: &random)
        let budget = configuration.probeIntervalMs > configuration.probeTimeoutMs + 40 ? configuration.probeIntervalMs - configuration.probeTimeoutMs - 20 : 20
        let reached = await withTaskGroup(of: Bool.self) { group -> Bool in
            for helper in helpers {
                group.addTask(executorPreference: host.loop) { [self] in
                    let request = Gossip(fromNode: selfID, targetNode: target, updates: outgoing(to: helper), timeoutMs: UInt32(budget - 10))
                    guard let answer = try? await peers.call(helper, "Discovery.ProbeVia", request, returning: Gossip.self, timeoutMs: budget) else { return false }
                    received(answer, from: helper)
                    return answer.reached
                }
            }
            for await reached in group where reached {
                group.cancelAll()
                return true
            }
            return false
        }
        if !reached {
            let wasAlive = membership.members[target]?.state == .alive
            membership.probeFailed(target, nowMs: wallClockMs())
            if wasAlive { countChange(to: .suspect) }
            if wasAlive { logger.info("node \(target) is suspect: no ack directly or through \(helpers.count) helpers") }
        }
    }

    // MARK: Methods

    private func registerMethods() {
        let server = host.server
        // Gossip is between nodes' Discoveries (over TCP, signed): a local user on the Unix
        // socket could otherwise evict or resurrect nodes cluster-wide.
        server.registerImmediate("Discovery.Probe") { [self] (gossip: Gossip, request) in
            try requireNode(request, "Probe")
            received(gossip, from: gossip.fromNode)
            return Gossip(fromNode: selfID, updates: outgoing(to: gossip.fromNode))
        }
        server.register("Discovery.ProbeVia") { [self] (gossip: Gossip, request) in
            try requireNode(request, "ProbeVia")
            received(gossip, from: gossip.fromNode)
            var reached = false
            let request = Gossip(fromNode: selfID, targetNode: gossip.targetNode, updates: outgoing(to: gossip.targetNode))
            if let ack = try? await peers.call(gossip.targetNode, "Discovery.Probe", request, returning: Gossip.self, timeoutMs: UInt64(max(gossip.timeoutMs, 10))) {
                received(ack, from: gossip.targetNode)
                reached = true
            }
            return Gossip(fromNode: selfID, updates: outgoing(to: gossip.fromNode), reached: reached)
        }
        server.registerImmediate("Discovery.Sync") { [self] (gossip: Gossip, request) in
            try requireNode(request, "Sync")
            received(gossip, from: gossip.fromNode)
            return Gossip(fromNode: selfID, updates: membership.fullState)
        }
        server.registerImmediate("Discovery.Members") { [self] (_: MembersRequest, _) in members() }
        server.register("Discovery.Watch") { [self] (request: WatchRequest, _) in
            let deadline = monotonicNs() + UInt64(min(max(request.timeoutMs, 1), 60_000)) * 1_000_000
            while membership.change <= request.afterChange && monotonicNs() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            return members()
        }
        // Services register as the user Discovery runs as (root on a real node): any other
        // local user could point the cluster at a service of their own.
        server.registerImmediate("Discovery.Register") { [self] (lease: ServiceLease, request) in
            try requireLocal(request, "Register", asService: true)
            var instance = lease.instance
            instance.nodeID = selfID
            let leaseMs = lease.leaseMs == 0 ? DiscoveryService.defaultLeaseMs : min(lease.leaseMs, 60_000)
            registry.register(instance, expiresMs: wallClockMs() + UInt64(leaseMs))
            membership.setServices(registry.instances)
            logger.info("registered \(instance.kind) instance \(instance.instance) (pid \(instance.pid)) for \(leaseMs) ms")
            return ServiceLease(instance: instance, leaseMs: leaseMs)
        }
        server.registerImmediate("Discovery.Renew") { [self] (lease: ServiceLease, request) in
            try requireLocal(request, "Renew", asService: true)
            let leaseMs = lease.leaseMs == 0 ? DiscoveryService.defaultLeaseMs : min(lease.leaseMs, 60_000)
            guard registry.renew(kind: lease.instance.kind, instance: lease.instance.instance, expiresMs: wallClockMs() + UInt64(leaseMs)) else {
                throw RPCError(.notFound, "\(lease.instance.kind) instance \(lease.instance.instance) is not registered (its lease ended): register again")
            }
            return ServiceLease(instance: lease.instance, leaseMs: leaseMs)
        }
        server.registerImmediate("Discovery.Deregister") { [self] (lease: ServiceLease, request) in
            try requireLocal(request, "Deregister", asService: true)
            guard registry.deregister(kind: lease.instance.kind, instance: lease.instance.instance) else {
                throw RPCError(.notFound, "\(lease.instance.kind) instance \(lease.instance.instance) is not registered")
            }
            membership.setServices(registry.instances)
            return lease
        }
        server.registerImmediate("Discovery.Lookup") { [self] (request: LookupRequest, _) in
            LookupResponse(instances: lookup(kind: request.kind, nodeID: request.nodeID))
        }
        server.registerImmediate("Discovery.GetMap") { [self] (_: Empty, _) in
            MapText(text: mapText, source: map.source, digest: map.digest)
        }
        server.register("Discovery.SetMap") { [self] (request: MapText, caller) in
            try requireLocal(caller, "SetMap", root: true)
            return try await setMap(text: request.text, source: request.source.isEmpty ? "<setpe>" : request.source)
        }
        server.register("Discovery.Disable") { [self] (_: Empty, caller) in
            try requireLocal(caller, "Disable", root: true)
            membership.leave()
            logger.notice("left the cluster (setpe -off)")
            await announce()
            return Empty()
        }
    }

    /// - Parameters:
    ///   - root: only root may call.
    ///   - asService: only root or the user this service runs as (a service of the node) may call.
    private func requireLocal(_ request: RPCRequest, _ method: String, root: Bool = false, asService: Bool = false) throws {
        guard case let .local(_, uid, _, _) = request.caller else {
            throw RPCError(.permissionDenied, "\(method) is only for local callers on the node's Unix socket, not \(request.caller)")
        }
        if root && uid != 0 {
            throw RPCError(.permissionDenied, "\(method) needs root (caller uid \(uid))")
        }
        if asService && uid != 0 && uid != geteuid() {
            throw RPCError(.permissionDenied, "Discovery.\(method) is for the node's services (uid \(geteuid())), not uid \(uid)")
        }
    }

    /// Refuses callers that are not another node (over TCP, signed with the cluster key).
    private func requireNode(_ request: RPCRequest, _ method: String) throws {
        guard case .remote = request.caller else {
            throw RPCError(.permissionDenied, "Discovery.\(method) is gossip between nodes, not for \(request.caller)")
        }
    }

    /// Every map node as this node sees it.
    func members() -> MembersResponse {
        let own = membership.own
        let views = map.nodes.map { node -> MemberView in
            let member = membership.members[node.id]
            let liveness = member?.state ?? .dead
            var mismatch = ""
            if let member, !member.mapDigest.isEmpty, liveness == .alive || liveness == .suspect {
                if member.mapDigest != own.mapDigest {
                    mismatch = "map digest \(member.mapDigest.prefix(12)) differs from \(own.mapDigest.prefix(12)) on node \(selfID)"
                } else if member.version != own.version {
                    mismatch = "OMX version \(member.version) differs from \(own.version) on node \(selfID)"
                }
            }
            return MemberView(
                id: node.id, address: node.address, aliases: node.aliases, state: mismatch.isEmpty ? liveness : .mismatch,
                liveness: liveness, incarnation: member?.incarnation ?? 0, mapDigest: member?.mapDigest ?? "",
                version: member?.version ?? "", lastHeardMs: node.id == selfID ? wallClockMs() : member?.lastHeardMs ?? 0,
                services: member?.services ?? [], mismatch: mismatch)
        }
        return MembersResponse(members: views, selfNode: selfID, change: membership.change)
    }

    /// Live instances of `kind` (on `nodeID`, or anywhere for 0) on members that run this
    /// node's configuration.
    func lookup(kind: String, nodeID: UInt32) -> [ServiceInstance] {
        members().members
            .filter { ($0.state == .alive || $0.state == .suspect) && (nodeID == 0 || $0.id == nodeID) }
            .flatMap(\.services)
            .filter { kind.isEmpty || $0.kind == kind }
    }

    private func setMap(text: String, source: String) async throws -> MapText {
        let newMap: ClusterMap
        do {
            newMap = try MapParser.parse(text: text, source: source)
        } catch let error as MapError {
            throw RPCError(.invalidArgument, error.description)
        }
        guard newMap.node(id: selfID) != nil else {
            throw RPCError(.failedPrecondition, "\(source) has no node \(selfID), which this node is; not loaded")
        }
        map = newMap
        mapText = text
        peers.map = newMap
        host.server.setAllowedAddresses(OMXConfig.active.securePorts ? newMap.resolvedAddresses() : nil)
        host.mapDigest = newMap.digest
        membership.setNodes(newMap.nodes.map(\.id), mapDigest: newMap.digest)
        if membership.hasLeft { membership.rejoin(incarnation: wallClockMs()) }
        logger.notice("loaded map \(source) (\(newMap.nodes.count) nodes, digest \(newMap.shortDigest))")
        await join(everyone: true)
        return MapText(text: text, source: source, digest: newMap.digest)
    }
}
