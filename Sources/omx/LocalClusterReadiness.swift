import Glibc
import Logging
import Shared

/// When a local cluster is ready: `omx cluster up` returns only once every node is alive in
/// Discovery, every service answers on its socket and every `/mfs` view is mounted and shows
/// every node, so the next command never meets a part still starting.
extension LocalClusterLauncher {
    /// Waits until node 1's Discovery sees every node alive.
    /// - Throws: `ConfigError` with the states seen when the time runs out.
    func waitUntilAlive(nodes: Int, timeoutSeconds: Int) async throws {
        let missing = try await pollMembers(timeoutSeconds: timeoutSeconds) { response in
            response.members.filter { $0.state == .alive }.count == nodes ? nil : response.members.map { "node \($0.id) \($0.state)" }.joined(separator: ", ")
        }
        if let missing { throw ConfigError("not every node was alive within \(timeoutSeconds) s: \(missing); logs are in \(dir)/node-*/log") }
    }

    /// Waits until node 1's Discovery lists every service of every node (the registry spreads
    /// by gossip), so that `omx status` right after shows the whole cluster.
    /// - Throws: `ConfigError` naming the nodes still missing a service when the time runs out.
    func waitUntilRegistered(nodes: Int, gateways: UInt32, timeoutSeconds: Int) async throws {
        let gateways = OMXConfig.active.mfs.enabled ? Int(gateways) : 0
        let missing = try await pollMembers(timeoutSeconds: timeoutSeconds) { response in
            let incomplete = response.members.filter { member in
                let kinds = member.services.map(\.kind)
                return !kinds.contains(ServiceKind.balancer.rawValue) || !kinds.contains(ServiceKind.migrator.rawValue)
                    || kinds.filter { $0 == ServiceKind.fsgateway.rawValue }.count < gateways
            }
            guard !incomplete.isEmpty || response.members.count != nodes else { return nil }
            return "node(s) \(incomplete.map { String($0.id) }.joined(separator: ", ")) not yet listing every service"
        }
        if let missing {
            throw ConfigError("node 1's Discovery did not list every service within \(timeoutSeconds) s: \(missing); logs are in \(dir)/node-*/log")
        }
    }

    /// Asks node 1's Discovery for the members every 50 ms until `missing` finds nothing
    /// missing (nil); returns what was still missing when the time ran out.
    private func pollMembers(timeoutSeconds: Int, _ missing: (MembersResponse) -> String?) async throws -> String? {
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(runDir(node: 1))/discovery.sock"), logger: Logger(label: "omx"))
        let deadline = monotonicNs() + UInt64(timeoutSeconds) * 1_000_000_000
        var last: String? = "no answer from node 1's Discovery"
        while monotonicNs() < deadline {
            if let response = try? await client.call("Discovery.Members", MembersRequest(), returning: MembersResponse.self) {
                last = missing(response)
                if last == nil { break }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        await client.close()
        await loop.shutdown()
        return last
    }

    /// Waits until every service of every node answers `Health` on its Unix socket and every
    /// node's `/mfs` is mounted and shows every node.
    /// - Throws: `ConfigError` naming the first part that died (with its log) or is still not
    ///   ready when the time runs out.
    func waitUntilServing(nodes: Int, gateways: UInt32, timeoutSeconds: Int) async throws {
        var waiting = (1...nodes).flatMap { node in services(node: node, of: nodes, gateways: gateways).map { (node: node, name: $0.name) } }
        let loop = try EventLoop()
        let deadline = monotonicNs() + UInt64(timeoutSeconds) * 1_000_000_000
        var failure: ConfigError?
        while let part = waiting.first {
            do {
                if try await isReady(part, of: nodes, loop: loop) {
                    waiting.removeFirst()
                    continue
                }
            } catch let error as ConfigError {
                failure = error
                break
            }
            guard monotonicNs() < deadline else {
                failure = ConfigError("node \(part.node)'s \(part.name) was not ready within \(timeoutSeconds) s; see \(logDir(node: part.node))/\(part.name).log")
                break
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        await loop.shutdown()
        if let failure { throw failure }
    }

    /// Whether one part answers (or is mounted).
    /// - Throws: `ConfigError` when its process has died, with the end of its log.
    private func isReady(_ part: (node: Int, name: String), of nodeCount: Int, loop: EventLoop) async throws -> Bool {
        let run = runDir(node: part.node)
        guard LocalClusterLauncher.runningPID("\(run)/\(part.name).pid") != nil else {
            let log = (try? readTextFile("\(logDir(node: part.node))/\(part.name).log")) ?? ""
            throw ConfigError("node \(part.node)'s \(part.name) exited while starting:\n\(log.split(separator: "\n").suffix(5).joined(separator: "\n"))")
        }
        if part.name == "mfs" {
            // Mounted, and showing every node: their gateways are registered and known here.
            guard ((try? readTextFile("/proc/self/mounts")) ?? "").contains(" \(mfsDir(node: part.node)) fuse") else { return false }
            return (1...nodeCount).allSatisfy { fileExists("\(mfsDir(node: part.node))/\($0)") }
        }
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(run)/\(part.name).sock"), logger: Logger(label: "omx"))
        let answered = (try? await client.call("Health", HealthRequest(), returning: HealthResponse.self, timeout: .seconds(1))) != nil
        await client.close()
        return answered
    }
}
