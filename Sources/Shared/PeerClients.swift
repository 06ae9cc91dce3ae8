import Logging
import Synchronization

/// RPC clients to one service on other nodes, one per address, trying a node's aliases when
/// its main address cannot be reached. Safe to use from any thread.
public final class PeerClients: Sendable {
    private let loop: EventLoop
    private let configuration: RPCClient.Configuration
    private let port: Int
    private let logger: Logger
    private let clients = Mutex<[String: RPCClient]>([:])
    /// The address of each node that answered last after the one tried first did not.
    private let answeredLast = Mutex<[UInt32: String]>([:])
    private let currentMap: Mutex<ClusterMap>
    /// Looks up a host name's IPv4 addresses (blocking; run on libuv's pool).
    private let resolve: @Sendable (String) -> [String]

    /// Clients that call `port` on the map's nodes, signed by `authenticator`, from `bindAddress`.
    public convenience init(loop: EventLoop, map: ClusterMap, port: Int, authenticator: Authenticator, bindAddress: String?, logger: Logger) {
        self.init(loop: loop, map: map, port: port, authenticator: authenticator, bindAddress: bindAddress, logger: logger, resolve: { resolveIPv4($0) })
    }

    /// As the public init, looking host names up with `resolve`.
    init(
        loop: EventLoop, map: ClusterMap, port: Int, authenticator: Authenticator, bindAddress: String?, logger: Logger,
        resolve: @escaping @Sendable (String) -> [String]
    ) {
        self.loop = loop
        self.resolve = resolve
        currentMap = Mutex(map)
        self.port = port
        self.logger = logger
        var configuration = RPCClient.Configuration(authenticator: authenticator, bindAddress: bindAddress)
        // A node that comes back must be reachable at once: retry connecting soon.
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        configuration.connectTimeout = .seconds(1)
        self.configuration = configuration
    }

    /// The map whose addresses are called (replaced after `setpe -w`).
    public var map: ClusterMap {
        get { currentMap.withLock { $0 } }
        set { currentMap.withLock { $0 = newValue } }
    }

    /// The client of `address`, an address of node `id`; a host name is looked up first, on
    /// libuv's pool (a slow DNS holds up no socket of the service), and again on the next
    /// call while it does not resolve.
    /// - Throws: `RPCError` (UNAVAILABLE, never sent) when the name does not resolve.
    private func client(for address: String, of id: UInt32) async throws -> RPCClient {
        if let client = clients.withLock({ $0[address] }) { return client }
        let resolve = self.resolve
        let host: String? = IPv4Address(address) != nil ? address : try await loop.offload { resolve(address).first }
        guard let host else {
            throw RPCError(.unavailable, "cannot resolve \(address), an address of node \(id), to an IPv4 address", neverSent: true)
        }
        return clients.withLock { clients in
            if let client = clients[address] { return client }
            let client = RPCClient(loop: loop, endpoint: .tcp(host: host, port: port), configuration: configuration, logger: logger)
            clients[address] = client
            return client
        }
    }

    /// Calls `method` on node `id` at the address that answered last (its main address at
    /// first), then at its other addresses while the node cannot be reached (the call was never
    /// sent); other failures are final, a lost connection included: the call may have been made.
    /// An address with others after it has half the time left, so that a host that does not
    /// answer (a dead link) leaves time for the next.
    public func call<Request: WireMessage, Response: WireMessage>(
        _ id: UInt32, _ method: String, _ request: Request, returning: Response.Type = Response.self, timeoutMs: UInt64
    ) async throws -> Response {
        guard let node = map.node(id: id) else { throw RPCError(.notFound, "node \(id) is not in the map") }
        let deadline = monotonicNs(afterMs: timeoutMs)
        var lastError = RPCError(.unavailable, "node \(id) has no address", neverSent: true)
        let addresses = inOrderOfTrial(node)
        for (index, address) in addresses.enumerated() {
            let now = monotonicNs()
            guard deadline > now else { break }
            let leftMs = (deadline - now) / 1_000_000
            let timeoutMs = index == addresses.count - 1 ? leftMs : leftMs / 2
            guard timeoutMs > 0 else { continue }
            do {
                let response = try await client(for: address, of: id).call(method, request, returning: Response.self, timeout: .milliseconds(Int64(timeoutMs)))
                if index > 0 { answeredLast.withLock { $0[id] = address } }
                return response
            } catch let error as RPCError where error.neverSent {
                lastError = error
            }
        }
        throw lastError
    }

    /// A node's addresses, the one that answered last first.
    private func inOrderOfTrial(_ node: MapNode) -> [String] {
        guard let last = answeredLast.withLock({ $0[node.id] }), let index = node.addresses.firstIndex(of: last) else { return node.addresses }
        var addresses = node.addresses
        addresses.swapAt(0, index)
        return addresses
    }

    /// Closes every client.
    public func close() async {
        let all = clients.withLock { clients in
            defer { clients = [:] }
            return Array(clients.values)
        }
        for client in all { await client.close() }
    }
}
