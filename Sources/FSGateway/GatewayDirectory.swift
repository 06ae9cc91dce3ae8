import Logging
import Shared
import Synchronization

/// Finds every node's live gateway instances (Discovery's Lookup, refreshed every two
/// seconds; the map's address and the first instance's port when Discovery has nothing) and
/// makes blocking calls to them from the FUSE threads, each on a connection of its own. Path
/// operations that are idempotent retry on another instance when one dies; the rest fail with
/// EIO.
final class GatewayDirectory: Sendable {
    let loop: EventLoop
    let map: ClusterMap
    let authenticator: Authenticator
    let bindAddress: String?
    let discovery: RPCClient
    let logger: Logger
    private let clients = Mutex<[String: BlockingRPCClient]>([:])
    private let instances = Mutex<(atNs: UInt64, byNode: [UInt32: [ServiceInstance]])>((0, [:]))
    private let turn = Atomic<UInt64>(0)

    init(loop: EventLoop, map: ClusterMap, authenticator: Authenticator, bindAddress: String?, runDir: String, logger: Logger) {
        self.loop = loop
        self.map = map
        self.authenticator = authenticator
        self.bindAddress = bindAddress
        self.logger = logger
        discovery = RPCClient(loop: loop, endpoint: .unix(path: "\(runDir)/\(ServiceKind.discovery.socketName())"), logger: logger)
    }

    /// The nodes with a live gateway (all map nodes while Discovery does not answer).
    func liveNodes() -> [UInt32] {
        _ = endpoints(of: 0)
        let known = instances.withLock { $0 }
        return known.atNs == 0 ? map.nodes.map(\.id) : known.byNode.keys.sorted()
    }

    /// Whether `node` has a live gateway. A map node missing from a list more than a fifth of
    /// a second old is asked about afresh: it may have come up since (a cluster starting).
    func isLive(_ node: UInt32) -> Bool {
        if liveNodes().contains(node) { return true }
        guard map.node(id: node) != nil else { return false }
        _ = endpoints(of: node, maxAgeNs: 200_000_000)
        return liveNodes().contains(node)
    }

    /// The live instances of node `node`'s gateway, in an order that spreads the work, from
    /// a list Discovery gave at most `maxAgeNs` ago.
    /// With `spread`, each call starts from the next instance; otherwise from the lowest.
    private func endpoints(of node: UInt32, maxAgeNs: UInt64 = 2_000_000_000, spread: Bool = true) -> [(host: String, port: Int)] {
        let cached = instances.withLock { $0 }
        var byNode = cached.byNode
        if monotonicNs() - cached.atNs > maxAgeNs {
            if let bytes = try? discovery.callBlocking("Discovery.Lookup", LookupRequest(kind: "fsgateway").wire(), timeout: .milliseconds(500)),
               let answer = try? LookupResponse(wire: bytes) {
                byNode = Dictionary(grouping: answer.instances, by: \.nodeID)
                instances.withLock { $0 = (monotonicNs(), byNode) }
            }
        }
        var list = (byNode[node] ?? []).sorted { $0.instance < $1.instance }.map { (host: $0.address, port: Int($0.port)) }
        if list.isEmpty, let entry = map.node(id: node) {
            list = [(resolveIPv4(entry.address).first ?? entry.address, ServiceKind.fsgateway.port(instance: 0))]
        }
        guard list.count > 1, spread else { return list }
        let start = Int(turn.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(list.count))
        return Array(list[start...] + list[..<start])
    }

    /// The client of one instance: each FUSE thread makes its call on a connection of its own.
    private func client(_ host: String, _ port: Int) -> BlockingRPCClient {
        clients.withLock { clients in
            let key = "\(host):\(port)"
            if let client = clients[key] { return client }
            let client = BlockingRPCClient(host: host, port: port, authenticator: authenticator, bindAddress: bindAddress)
            clients[key] = client
            return client
        }
    }

    /// Asks for the changes of `node`'s tree: from `instance` ("host:port") when given, else
    /// from its live instance with the lowest number. A long poll (up to `request.waitMs`).
    /// Returns the answer and the instance that gave it (each instance has a feed of its own).
    func changes(_ node: UInt32, _ request: ChangesRequest, from instance: String?) throws -> (ChangesResponse, String) {
        guard let (host, port) = instance.flatMap(GatewayDirectory.endpoint) ?? endpoints(of: node, spread: false).first else { throw RPCError(.unavailable, "node \(node) has no gateway") }
        let timeout = Duration.milliseconds(Int(request.waitMs) + 10_000)
        return (try ChangesResponse(wire: try client(host, port).call("FSGateway.Changes", request.wire(), timeout: timeout)), "\(host):\(port)")
    }

    /// An instance named "host:port", or nil when that is not what `instance` holds.
    private static func endpoint(_ instance: String) -> (host: String, port: Int)? {
        guard let colon = instance.lastIndex(of: ":"), let port = Int(instance[instance.index(after: colon)...]) else { return nil }
        return (String(instance[..<colon]), port)
    }

    /// Calls `method` on a gateway of `node`; with `retry`, on each live instance in turn until
    /// one answers. Returns the answer and the instance that gave it ("host:port").
    func call(_ node: UInt32, _ method: String, _ request: FsRequest, retry: Bool, pinned: String? = nil) throws -> (FsResponse, String) {
        var targets = endpoints(of: node)
        if let pinned = pinned.flatMap(GatewayDirectory.endpoint) { targets = [pinned] }
        var lastError: Error = RPCError(.unavailable, "node \(node) has no gateway")
        let body = request.wire()
        var tried: Set<String> = []
        func attempt(_ host: String, _ port: Int) -> (FsResponse, String)? {
            do {
                return (try FsResponse(wire: try client(host, port).call("FSGateway.\(method)", body, timeout: .seconds(30))), "\(host):\(port)")
            } catch {
                lastError = error
                tried.insert("\(host):\(port)")
                return nil
            }
        }
        for (host, port) in retry ? targets : Array(targets.prefix(1)) {
            if let answer = attempt(host, port) { return answer }
        }
        // Every instance known failed: instances that registered since the list was read
        // (or that replaced the dead ones) get the call.
        guard retry, pinned == nil else { throw lastError }
        for (host, port) in endpoints(of: node, maxAgeNs: 100_000_000) where !tried.contains("\(host):\(port)") {
            if let answer = attempt(host, port) { return answer }
        }
        throw lastError
    }
}
