import Glibc
import Logging
import Synchronization

/// What every `omx-*` service process shares: the map, its node, the key, the event loop and
/// an RPC server listening on the node's address and on a Unix socket in the run directory,
/// answering `Ping` and `Health`, and stopping cleanly on SIGTERM.
public final class ServiceHost: @unchecked Sendable {
    public let kind: ServiceKind
    public let instance: UInt32
    public let map: ClusterMap
    public let node: MapNode
    public let runDir: String
    public let loop: EventLoop
    public let server: RPCServer
    public let authenticator: Authenticator
    public let logger: Logger
    /// This process's counters, served by `Stats`.
    public let metrics = MetricsRegistry()
    private let options: ServiceOptions
    private let startedNs = monotonicNs()
    private let currentMapDigest: Mutex<String>

    /// Loads the map and the key and prepares the server; nothing listens yet.
    /// - Throws: `MapError` or `ConfigError` saying what is wrong with the configuration.
    public init(kind: ServiceKind, instance: UInt32 = 0, options: ServiceOptions) throws {
        bootstrapLogging(level: options.logLevel)
        self.kind = kind
        self.instance = instance
        self.options = options
        map = try ClusterMap.load(path: resolveMapPath(options.mapPath))
        currentMapDigest = Mutex(map.digest)
        if let id = options.nodeID {
            guard let node = map.node(id: id) else {
                throw ConfigError("--node-id \(id): \(map.source) has no node \(id) (it has \(map.nodes.map { String($0.id) }.joined(separator: ", ")))")
            }
            self.node = node
        } else {
            node = try map.localNode()
        }
        runDir = resolveRunDir(options.runDir)
        let key = try ClusterKey.load(from: resolveKeyPath(options.keyPath))
        authenticator = Authenticator(key: key, nodeID: node.id)
        var logger = Logger(label: "omx-\(kind.rawValue)")
        logger[metadataKey: "node"] = "\(node.id)"
        if kind == .fsgateway { logger[metadataKey: "instance"] = "\(instance)" }
        self.logger = logger
        loop = try EventLoop()
        var serverConfiguration = RPCServer.Configuration(
            name: "\(kind.rawValue) on node \(node.id)", maxFrameSize: options.maxFrameSize,
            authenticator: authenticator, allowedAddresses: OMXConfig.active.securePorts ? map.resolvedAddresses() : nil)
        serverConfiguration.metrics = metrics
        let limits = OMXConfig.active.limits
        if let perUser = limits.connectionsPerUser { serverConfiguration.maxConnectionsPerUser = perUser }
        if let perAddress = limits.connectionsPerAddress { serverConfiguration.maxConnectionsPerAddress = perAddress }
        if let seconds = limits.stalledSeconds { serverConfiguration.stalledTimeout = .seconds(seconds) }
        server = RPCServer(loop: loop, configuration: serverConfiguration, logger: logger)
        registerCommonMethods()
    }

    /// The digest of the map the service runs with now (Discovery may load another: `setpe -w`).
    public var mapDigest: String {
        get { currentMapDigest.withLock { $0 } }
        set { currentMapDigest.withLock { $0 = newValue } }
    }

    /// The TCP endpoint this service listens on.
    public var tcpEndpoint: RPCEndpoint {
        .tcp(host: resolveIPv4(node.address).first ?? node.address, port: options.port ?? kind.port(instance: instance))
    }

    /// The node's aliases that belong to this host: the service listens there too, so peers
    /// whose route to the main address fails can reach it through an alias.
    public var aliasEndpoints: [RPCEndpoint] {
        guard case let .tcp(_, port) = tcpEndpoint else { return [] }
        return node.aliases.flatMap(resolveIPv4).filter(isLocalIPv4Address).map { .tcp(host: $0, port: port) }
    }

    /// The Unix socket this service listens on.
    public var unixEndpoint: RPCEndpoint { .unix(path: "\(runDir)/\(kind.socketName(instance: instance))") }

    private func registerCommonMethods() {
        let nodeID = node.id
        server.registerImmediate("Ping") { (request: PingRequest, _) in PingResponse(payload: request.payload, nodeID: nodeID) }
        server.registerImmediate("Health") { [self] (_: HealthRequest, _) in
            HealthResponse(
                service: kind.rawValue, version: omxVersion, nodeID: nodeID,
                uptimeMs: (monotonicNs() - startedNs) / 1_000_000, mapDigest: mapDigest, instance: instance,
                pid: UInt32(getpid()))
        }
        server.registerImmediate("Stats") { [self] (_: StatsRequest, _) in
            metrics.set("omx_uptime_seconds", help: "Seconds since the service started.", Double(monotonicNs() - startedNs) / 1e9)
            metrics.set("omx_resident_bytes", help: "The service process's resident memory.", Double((residentKiB(of: getpid()) ?? 0) * 1024))
            return StatsResponse(service: kind.rawValue, nodeID: nodeID, instance: instance, metrics: metrics.snapshot())
        }
    }

    /// Listens, serves until SIGTERM or SIGINT, then drains the calls in flight and returns.
    /// Every service but Discovery registers itself with its node's Discovery meanwhile.
    /// - Parameters:
    ///   - background: the service's own work, run on the loop once it listens; cancelled at the end.
    ///   - beforeStop: run after the signal, before the server drains.
    /// - Throws: `UVError` or `ConfigError` when an endpoint cannot be bound.
    public func run(background: (@Sendable () async -> Void)? = nil, beforeStop: (@Sendable () async -> Void)? = nil) async throws {
        // Watched before the service can be reached: a SIGTERM from then on drains it.
        let (terminations, terminated) = AsyncStream<Int32>.makeStream()
        try await SignalWatcher.watchTermination(on: loop) { terminated.yield($0) }
        try makeDirectories(runDir)
        for endpoint in [tcpEndpoint] + aliasEndpoints { try await server.listen(on: endpoint) }
        try await server.listen(on: unixEndpoint)
        let endpoints = ([tcpEndpoint] + aliasEndpoints + [unixEndpoint]).map(\.description).joined(separator: ", ")
        logger.info("\(kind.executableName) \(omxVersion) serving node \(node.id) on \(endpoints) (map \(map.source), digest \(map.shortDigest), configuration \(OMXConfig.active.source))")
        let work = background.map { body in Task(executorPreference: loop) { await body() } }
        let registration = kind == .discovery ? nil : ServiceRegistration(host: self)
        let registering = registration.map { registration in Task(executorPreference: loop) { await registration.keepRegistered() } }
        var signals = terminations.makeAsyncIterator()
        let signal = await signals.next() ?? SIGTERM
        logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"); draining calls in flight")
        registering?.cancel()
        await registration?.deregister()
        if let beforeStop { await withTaskExecutorPreference(loop) { await beforeStop() } }
        work?.cancel()
        await server.shutdown(grace: .seconds(5))
        await loop.shutdown()
        logger.info("stopped")
    }

    /// This service instance as Discovery lists it.
    public var serviceInstance: ServiceInstance {
        var address = node.address
        var port = 0
        if case let .tcp(host, tcpPort) = tcpEndpoint {
            address = host
            port = tcpPort
        }
        var unixPath = ""
        if case let .unix(path) = unixEndpoint { unixPath = path }
        return ServiceInstance(
            kind: kind.rawValue, instance: instance, nodeID: node.id, address: address, port: UInt32(port), unixPath: unixPath,
            pid: UInt32(getpid()))
    }
}
