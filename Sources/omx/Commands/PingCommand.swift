import ArgumentParser
import Shared

/// `omx ping`: a round trip to one service of one node.
struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Calls a service's Ping and prints the round trip (like ping(8)).",
        discussion: """
            Without --node, the local node's service is called on its Unix socket in the run directory.
            With --node N, node N's service is called over TCP at its map address, signed with the cluster key.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "discovery, balancer, migrator or fsgateway.")
    var service: ServiceKind

    @Option(help: "The node to ping (default: the local node, through its Unix socket).")
    var node: UInt32?

    @Option(help: "The FSGateway instance.")
    var instance: UInt32 = 0

    @Option(name: [.short, .customLong("count")], help: "How many pings.")
    var count = 1

    @Option(help: "Milliseconds to wait for each answer.")
    var timeout: UInt64 = 2_000

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let client = try session.client(for: service, node: node, instance: instance)
        let target = "\(service.rawValue) on \(node.map { "node \($0)" } ?? "the local node") (\(client.endpoint))"
        var samples: [Double] = []
        do {
            let health = try await client.call("Health", HealthRequest(), returning: HealthResponse.self, timeout: .milliseconds(Int64(timeout)))
            print("\(target): \(health.service) \(health.version) on node \(health.nodeID), pid \(health.pid), up \(formatSeconds(health.uptimeMs)), map \(health.mapDigest.prefix(12))")
            for sequence in 1...count {
                let start = monotonicNs()
                _ = try await client.call("Ping", PingRequest(payload: Array(repeating: 0, count: 56)), returning: PingResponse.self, timeout: .milliseconds(Int64(timeout)))
                let milliseconds = Double(monotonicNs() - start) / 1e6
                samples.append(milliseconds)
                print("reply from node \(health.nodeID): seq=\(sequence) time=\(formatMilliseconds(milliseconds)) ms")
                if sequence < count { try await Task.sleep(for: .milliseconds(200)) }
            }
        } catch let error as RPCError {
            printError("omx ping: \(target): \(error)")
            await session.close()
            throw ExitCode.failure
        }
        if count > 1 {
            let average = samples.reduce(0, +) / Double(samples.count)
            print("\(count) pings: min/avg/max = \(formatMilliseconds(samples.min()!))/\(formatMilliseconds(average))/\(formatMilliseconds(samples.max()!)) ms")
        }
        await session.close()
    }
}

/// "0.123"-style milliseconds.
func formatMilliseconds(_ value: Double) -> String {
    let thousandths = Int((value * 1000).rounded())
    let fraction = String(thousandths % 1000)
    return "\(thousandths / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
}

/// "12.3 s"-style seconds from milliseconds.
func formatSeconds(_ milliseconds: UInt64) -> String {
    "\(milliseconds / 1000).\((milliseconds % 1000) / 100) s"
}
