import Shared

/// I/O locality: every few rounds the gateways of every node are asked how many bytes the jobs
/// running here moved to or from that node's files (`FSGateway.Counters`, which count each
/// job's I/O wherever it ran); the growth since the last time says where each job's data is
/// now, and the decision core draws a job toward it.
extension BalancerService {
    static let ioRefreshRounds = 5

    /// Refreshes `recentIO` from the gateways' counters (nothing to ask while no job runs here).
    func refreshIO() async {
        guard !jobs.isEmpty else {
            recentIO = [:]
            return
        }
        guard let answer = try? await discovery.call("Discovery.Lookup", LookupRequest(kind: ServiceKind.fsgateway.rawValue), returning: LookupResponse.self, timeout: .seconds(1))
        else { return }
        let local = Set(jobs.map(\.id))
        let clients = answer.instances.map { (node: $0.nodeID, client: gatewayClient($0)) }
        var totals: [String: [UInt32: UInt64]] = [:]
        var answered: Set<UInt32> = []
        await withTaskGroup(of: (UInt32, [IoCounter]?).self) { group in
            for (node, client) in clients {
                group.addTask { (node, try? await client.call("FSGateway.Counters", FsRequest(), returning: FsResponse.self, timeout: .seconds(1)).counters) }
            }
            for await (node, counters) in group {
                guard let counters else { continue }
                answered.insert(node)
                for counter in counters where local.contains(counter.job) {
                    totals[counter.job, default: [:]][node, default: 0] += counter.bytesRead + counter.bytesWritten
                }
            }
        }
        // Growth per job and node; a node whose gateways did not answer keeps its last total.
        var recent: [String: [UInt32: UInt64]] = [:]
        var kept: [String: [UInt32: UInt64]] = [:]
        for id in local {
            var now = ioTotals[id] ?? [:]
            for node in answered { now[node] = totals[id]?[node] ?? 0 }
            for (node, bytes) in now {
                let before = ioTotals[id]?[node] ?? 0
                if bytes > before { recent[id, default: [:]][node] = bytes - before }
            }
            kept[id] = now
        }
        ioTotals = kept
        recentIO = recent
    }

    /// A client of one gateway instance, kept for the next refresh.
    private func gatewayClient(_ instance: ServiceInstance) -> RPCClient {
        let key = "\(instance.address):\(instance.port)"
        if let client = gatewayClients[key] { return client }
        let configuration = RPCClient.Configuration(authenticator: host.authenticator, bindAddress: resolveIPv4(host.node.address).first)
        let client = RPCClient(loop: host.loop, endpoint: .tcp(host: instance.address, port: Int(instance.port)), configuration: configuration, logger: host.logger)
        gatewayClients[key] = client
        return client
    }
}
