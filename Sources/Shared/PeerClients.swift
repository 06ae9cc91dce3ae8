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
    private let currentMap: Mutex<ClusterMap>

    /// Clients that call `port` on the map's nodes, signed by `authenticator`, from `bindAddress`.
    public init(loop: EventLoop, map: ClusterMap, port: Int, authenticator: Authenticator, bindAddress: String?, logger: Logger) {
        self.loop = loop
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

    private func client(for address: String) -> RPCClient {
        clients.withLock { clients in
            if let client = clients[address] { return client }
            let host = resolveIPv4(address).first ?? address
            let client = RPCClient(loop: loop, endpoint: .tcp(host: host, port: port), configuration: configuration, logger: logger)
            clients[address] = client
            return client
        }
    }

    /// Calls `method` on node `id`: its main address first, then each alias while the node
    /// cannot be reached (the call was never sent); other failures are final, a lost
    /// connection included: the call may have been made.
    public func call<Request: WireMessage, Response: WireMessage>(
        _ id: UInt32, _ method: String, _ request: Request, returning: Response.Type = Response.self, timeoutMs: UInt64
    ) async throws -> Response {
        guard let node = map.node(id: id) else { throw RPCError(.notFound, "node \(id) is not in the map") }
        let deadline = monotonicNs(afterMs: timeoutMs)
        var lastError = RPCError(.unavailable, "node \(id) has no address", neverSent: true)
        for address in node.addresses {
            let remaining = deadline > monotonicNs() ? (deadline - monotonicNs()) / 1_000_000 : 0
            guard remaining > 0 else { break }
            do {
                return try await client(for: address).call(method, request, returning: Response.self, timeout: .milliseconds(Int64(remaining)))
            } catch let error as RPCError where error.status == .unavailable && error.neverSent {
                lastError = error
            }
        }
        throw lastError
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
