import Logging
import XCTest

@testable import Shared

/// Calls to other nodes fall back to a node's ALIAS addresses when its main address fails.
final class PeerClientsTests: XCTestCase {
    func testACallReachesANodeThroughItsAliasWhenTheMainAddressRefuses() async throws {
        let map = try MapParser.parse(text: "1 127.0.60.1 1\n2 127.0.60.2 1\n2 127.0.60.12 ALIAS\n", source: "test.map")
        let key = ClusterKey.generate()
        let loop = try EventLoop()
        let server = RPCServer(
            loop: loop,
            configuration: .init(name: "node 2", authenticator: Authenticator(key: key, nodeID: 2), allowedAddresses: map.resolvedAddresses()),
            logger: Logger(label: "test"))
        server.register("Discovery.Probe") { (gossip: Gossip, _) in Gossip(fromNode: 2, updates: [], reached: gossip.fromNode == 1) }
        // Node 2 answers on its alias only; nothing listens on its main address.
        let port = try await server.listen(on: .tcp(host: "127.0.60.12", port: 0))
        let peers = PeerClients(loop: loop, map: map, port: port, authenticator: Authenticator(key: key, nodeID: 1), bindAddress: "127.0.60.1", logger: Logger(label: "test"))
        let answer = try await withTaskExecutorPreference(loop) {
            try await peers.call(2, "Discovery.Probe", Gossip(fromNode: 1, updates: []), returning: Gossip.self, timeoutMs: 2_000)
        }
        XCTAssertTrue(answer.reached)
        XCTAssertEqual(answer.fromNode, 2)
        await withTaskExecutorPreference(loop) { await peers.close() }
        await server.shutdown(grace: .seconds(1))
        await loop.shutdown()
    }
}
