import Logging
import Shared

/// RPC clients to other nodes' Discovery, one per address, trying a node's aliases when its
/// main address cannot be reached. Loop thread only.
final class PeerClients: @unchecked Sendable {
    private let loop: EventLoop
    private let configuration: RPCClient.Configuration
    private let port: Int
    private let logger: Logger
    private var clients: [String: RPCClient] = [:]
    var map: ClusterMap

    init(loop: EventLoop, map: ClusterMap, port: Int, authenticator: Authenticator, bindAddress: String?, logger: Logger) {
        self.loop = loop
        self.map = map
        self.port = port
        self.logger = logger
        var configuration = RPCClient.Configuration(authenticator: authenticator, bindAddress: bindAddress)
        // A member that comes back must be reachable at once: retry connecting soon.
        configuration.initialBackoff = .milliseconds(20)
        configuration.maxBackoff = .milliseconds(200)
        configuration.connectTimeout = .seconds(1)
        self.configuration = configuration
    }

    private func client(for address: String) -> RPCClient {
        if let client = clients[address] { return client }
        let host = resolveIPv4(address).first ?? address
        let client = RPCClient(loop: loop, endpoint: .tcp(host: host, port: port), configuration: configuration, logger: logger)
        clients[address] = client
        return client
    }

    /// Calls `method` on node `id`: its main address first, then each alias while the node
    /// cannot be reached (UNAVAILABLE); other failures are final.
    func call(_ id: UInt32, _ method: String, _ gossip: Gossip, timeoutMs: UInt64) async throws -> Gossip {
        guard let node = map.node(id: id) else { throw RPCError(.notFound, "node \(id) is not in the map") }
        let deadline = monotonicNs() + timeoutMs * 1_000_000
        var lastError = RPCError(.unavailable, "node \(id) has no address")
        for address in node.addresses {
            let remaining = deadline > monotonicNs() ? (deadline - monotonicNs()) / 1_000_000 : 0
            guard remaining > 0 else { break }
            do {
                return try await client(for: address).call(method, gossip, returning: Gossip.self, timeout: .milliseconds(Int64(remaining)))
            } catch let error as RPCError where error.status == .unavailable {
                lastError = error
            }
        }
        throw lastError
    }

    /// Closes every client.
    func close() async {
        for client in clients.values { await client.close() }
        clients = [:]
    }
}
