import Logging
import Synchronization
import XCTest

@testable import Shared

/// Calls to other nodes fall back to a node's ALIAS addresses when its main address fails.
final class PeerClientsTests: XCTestCase {
    /// A map of node 1 at `subnet`.1 and node 2 at `subnet`.2 with alias `subnet`.12, the key,
    /// and a loop with node 2's server (not listening yet), which answers probes from node 1.
    private func nodeTwo(onSubnet subnet: String) throws -> (ClusterMap, ClusterKey, EventLoop, RPCServer) {
        let map = try MapParser.parse(text: "1 \(subnet).1 1\n2 \(subnet).2 1\n2 \(subnet).12 ALIAS\n", source: "test.map")
        let key = ClusterKey.generate()
        let loop = try EventLoop()
        let server = RPCServer(
            loop: loop,
            configuration: .init(name: "node 2", authenticator: Authenticator(key: key, nodeID: 2), allowedAddresses: map.resolvedAddresses()),
            logger: Logger(label: "test"))
        server.register("Discovery.Probe") { (gossip: Gossip, _) in Gossip(fromNode: 2, updates: [], reached: gossip.fromNode == 1) }
        return (map, key, loop, server)
    }

    func testACallReachesANodeThroughItsAliasWhenTheMainAddressRefuses() async throws {
        let (map, key, loop, server) = try nodeTwo(onSubnet: "127.0.60")
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

    func testANodeWhoseMainAddressDoesNotAnswerIsReachedThroughItsAliasWithinAShortTimeout() async throws {
        let (map, key, loop, server) = try nodeTwo(onSubnet: "127.0.61")
        let port = try await server.listen(on: .tcp(host: "127.0.61.12", port: 0))
        // Node 2's main address takes no connection and refuses none (a dead link): every
        // connect to it stays in progress.
        let silent = try FullListener(host: "127.0.61.2", port: port)
        let full = await silent.becameFull()
        XCTAssertTrue(full, "the main address never stopped answering:\n\(silent.sockets)")
        let peers = PeerClients(loop: loop, map: map, port: port, authenticator: Authenticator(key: key, nodeID: 1), bindAddress: "127.0.61.1", logger: Logger(label: "test"))
        // A probe's timeout, shorter than a connect's.
        for probe in 1...3 {
            let answer = try await withTaskExecutorPreference(loop) {
                try await peers.call(2, "Discovery.Probe", Gossip(fromNode: 1, updates: []), returning: Gossip.self, timeoutMs: 300)
            }
            XCTAssertTrue(answer.reached, "probe \(probe)")
        }
        await withTaskExecutorPreference(loop) { await peers.close() }
        await server.shutdown(grace: .seconds(1))
        await loop.shutdown()
    }

    func testAHostNameThatDoesNotResolveYetIsLookedUpAgainOnTheNextCall() async throws {
        let map = try MapParser.parse(text: "1 127.0.62.1 1\n2 node-two.cluster 1\n", source: "test.map")
        let key = ClusterKey.generate()
        let loop = try EventLoop()
        let server = RPCServer(
            loop: loop, configuration: .init(name: "node 2", authenticator: Authenticator(key: key, nodeID: 2), allowedAddresses: ["127.0.62.1"]),
            logger: Logger(label: "test"))
        server.register("Discovery.Probe") { (gossip: Gossip, _) in Gossip(fromNode: 2, updates: [], reached: gossip.fromNode == 1) }
        let port = try await server.listen(on: .tcp(host: "127.0.62.2", port: 0))
        // The name server answers nothing at first (still booting), then the address.
        let lookups = Mutex(0)
        let peers = PeerClients(
            loop: loop, map: map, port: port, authenticator: Authenticator(key: key, nodeID: 1), bindAddress: "127.0.62.1", logger: Logger(label: "test"),
            resolve: { name in
                lookups.withLock { $0 += 1 }
                return name == "node-two.cluster" && lookups.withLock({ $0 }) > 1 ? ["127.0.62.2"] : []
            })
        let probe = { try await withTaskExecutorPreference(loop) {
            try await peers.call(2, "Discovery.Probe", Gossip(fromNode: 1, updates: []), returning: Gossip.self, timeoutMs: 2_000)
        } }
        await assertRPCError(.unavailable, containing: "cannot resolve node-two.cluster, an address of node 2") { try await probe() }
        let answer = try await probe()
        XCTAssertTrue(answer.reached, "the name resolved on the next call")
        XCTAssertEqual(lookups.withLock { $0 }, 2)
        await withTaskExecutorPreference(loop) { await peers.close() }
        await server.shutdown(grace: .seconds(1))
        await loop.shutdown()
    }
}
