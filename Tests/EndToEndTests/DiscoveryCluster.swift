import Foundation
import Logging
import Shared
import XCTest

/// A local cluster started with `omx cluster up` on 127.0.SUBNET.1..N, with RPC clients to each
/// node's Discovery. `down()` stops everything (`ClusterJanitor` does, when the test ends
/// without it).
final class DiscoveryCluster {
    let dir: String
    let subnet: Int
    let nodes: Int
    /// The configuration file every service and `omx` call reads, if any.
    let configPath: String?
    private let loop: EventLoop
    private var clients: [Int: RPCClient] = [:]

    /// - Parameter configText: an omx.conf for the whole cluster, written to `dir/omx.conf`.
    init(subnet: Int, nodes: Int, gateways: Int = 1, configText: String? = nil) throws {
        self.subnet = subnet
        self.nodes = nodes
        let dir = NSTemporaryDirectory() + "omx-cluster-\(subnet)-\(UUID().uuidString.prefix(6))"
        self.dir = dir
        configPath = configText == nil ? nil : dir + "/omx.conf"
        if let configText, let configPath {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try configText.write(toFile: configPath, atomically: true, encoding: .utf8)
        }
        loop = try EventLoop()
        let up = omx(["cluster", "up", "--nodes", "\(nodes)", "--dir", dir, "--first-address", "127.0.\(subnet).1", "--gateways", "\(gateways)"])
        guard up.status == 0 else {
            _ = omx(["cluster", "down", "--dir", dir])
            throw ConfigError("omx cluster up failed: \(up.stdout)\(up.stderr)")
        }
        ClusterJanitor.shared.started(dir)
    }

    var mapPath: String { "\(dir)/cluster.map" }
    var keyPath: String { "\(dir)/cluster.key" }
    func runDir(_ node: Int) -> String { "\(dir)/node-\(node)/run" }
    func log(_ node: Int, _ service: String) -> String {
        (try? String(contentsOfFile: "\(dir)/node-\(node)/log/\(service).log", encoding: .utf8)) ?? ""
    }

    /// Runs `omx` with this cluster's map, key and node 1's run directory.
    func omx(_ arguments: [String], runDir node: Int = 1) -> CommandResult {
        var environment = ["OMX_MAP": mapPath, "OMX_KEY": keyPath, "OMX_RUN_DIR": runDir(node)]
        environment["OMX_CONFIG"] = configPath
        return LocalCluster.run("omx", arguments, environment: environment)
    }

    func pid(_ node: Int, _ service: String) -> pid_t? {
        (try? String(contentsOfFile: "\(runDir(node))/\(service).pid", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func kill9(_ node: Int, _ service: String) {
        guard let pid = pid(node, service) else { return XCTFail("no pid for \(service) of node \(node)") }
        kill(pid, SIGKILL)
    }

    private func client(_ node: Int) -> RPCClient {
        if let client = clients[node] { return client }
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(runDir(node))/discovery.sock"), logger: Logger(label: "test"))
        clients[node] = client
        return client
    }

    /// Node `node`'s view of the membership, or nil when its Discovery does not answer.
    func members(seenBy node: Int) async -> MembersResponse? {
        try? await client(node).call("Discovery.Members", MembersRequest(), returning: MembersResponse.self, timeout: .milliseconds(500))
    }

    func state(of target: UInt32, seenBy node: Int) async -> MemberState? {
        await members(seenBy: node)?.members.first { $0.id == target }?.state
    }

    /// Waits (Discovery.Watch) for node `node`'s membership to change after `change`.
    func watch(seenBy node: Int, after change: UInt64, timeoutMs: UInt32) async throws -> MembersResponse {
        try await client(node).call(
            "Discovery.Watch", WatchRequest(afterChange: change, timeoutMs: timeoutMs), returning: MembersResponse.self,
            timeout: .milliseconds(Int64(timeoutMs) + 1_000))
    }

    func lookup(_ kind: String, seenBy node: Int) async -> [ServiceInstance]? {
        try? await client(node).call("Discovery.Lookup", LookupRequest(kind: kind), returning: LookupResponse.self, timeout: .milliseconds(500)).instances
    }

    /// Polls every 50 ms until `condition` holds; returns the seconds it took, or nil at the timeout.
    func waitFor(seconds: Double, _ condition: () async -> Bool) async -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if await condition() { return Date().timeIntervalSince(start) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    func down() async {
        for client in clients.values { await client.close() }
        await loop.shutdown()
        _ = omx(["cluster", "down", "--dir", dir])
        ClusterJanitor.shared.stopped(dir)
        // Never through a mount left in it (a node's /mfs shows every node's whole tree).
        removeTree(dir)
    }
}
