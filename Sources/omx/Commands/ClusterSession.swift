import Logging
import Shared

/// What a CLI command needs to reach services: an event loop and, for other nodes, the map
/// and the cluster key.
final class ClusterSession {
    let global: GlobalOptions
    let loop: EventLoop
    private var clients: [RPCClient] = []

    init(global: GlobalOptions) throws {
        self.global = global
        loop = try EventLoop()
    }

    /// A client of `service` on `node`, or of the local node's service on its Unix socket when
    /// `node` is nil.
    /// - Throws: `MapError` or `ConfigError` when the map or key cannot be loaded or lacks the node.
    func client(for service: ServiceKind, node: UInt32?, instance: UInt32 = 0) throws -> RPCClient {
        let logger = Logger(label: "omx")
        let client: RPCClient
        guard let node else {
            let path = "\(resolveRunDir(global.runDir))/\(service.socketName(instance: instance))"
            client = RPCClient(loop: loop, endpoint: .unix(path: path), logger: logger)
            clients.append(client)
            return client
        }
        let map = try ClusterMap.load(path: resolveMapPath(global.mapPath))
        guard let target = map.node(id: node) else {
            throw ConfigError("\(map.source) has no node \(node) (it has \(map.nodes.map { String($0.id) }.joined(separator: ", ")))")
        }
        let key = try ClusterKey.load(from: resolveKeyPath(global.keyPath))
        // Calls come from this host's node with the lowest id, as the target sees it in its map.
        let local = map.localNodes().first
        let configuration = RPCClient.Configuration(
            authenticator: Authenticator(key: key, nodeID: local?.id ?? 0),
            bindAddress: local.flatMap { resolveIPv4($0.address).first })
        let host = resolveIPv4(target.address).first ?? target.address
        client = RPCClient(loop: loop, endpoint: .tcp(host: host, port: service.port(instance: instance)), configuration: configuration, logger: logger)
        clients.append(client)
        return client
    }

    /// Closes every client and stops the loop.
    func close() async {
        for client in clients { await client.close() }
        await loop.shutdown()
    }
}
