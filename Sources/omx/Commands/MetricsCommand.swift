import ArgumentParser
import Shared

/// `omx metrics`: every service's counters in the Prometheus text format.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Prints the services' counters (calls, errors, migrations, bytes, file operations, membership) as Prometheus text.",
        discussion: """
            Asks the Stats method of a node's Discovery, Balancer, Migrator and every FSGateway instance
            (the local node's through their Unix sockets, another node's over TCP) and prints one
            exposition with node, service and instance labels, ready for a node exporter's textfile
            collector or a scrape proxy.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The node to ask (default: the local node).")
    var node: UInt32?

    @Flag(help: "Ask every node of the map.")
    var all = false

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let nodes: [UInt32?] = all ? try ClusterMap.load(path: resolveMapPath(global.mapPath)).nodes.map(\.id) : [node]
        var answers: [StatsResponse] = []
        var failures: [String] = []
        for node in nodes {
            let place = node.map { "node \($0)" } ?? "the local node"
            var targets: [(ServiceKind, UInt32)] = [(.discovery, 0), (.balancer, 0), (.migrator, 0)]
            do {
                let discovery = try session.client(for: .discovery, node: node)
                let health = try await discovery.call("Health", HealthRequest(), returning: HealthResponse.self, timeout: .seconds(2))
                let gateways = try await discovery.call("Discovery.Lookup", LookupRequest(kind: ServiceKind.fsgateway.rawValue), returning: LookupResponse.self, timeout: .seconds(2))
                targets += gateways.instances.filter { $0.nodeID == health.nodeID }.map { (.fsgateway, $0.instance) }.sorted { $0.1 < $1.1 }
            } catch {
                failures.append("\(place): Discovery: \(error)")
            }
            for (service, instance) in targets {
                do {
                    let client = try session.client(for: service, node: node, instance: instance)
                    answers.append(try await client.call("Stats", StatsRequest(), returning: StatsResponse.self, timeout: .seconds(2)))
                } catch {
                    failures.append("\(place): \(service.rawValue)\(service == .fsgateway ? " \(instance)" : ""): \(error)")
                }
            }
        }
        await session.close()
        print(PrometheusText.render(answers), terminator: "")
        for failure in failures { printError("omx metrics: \(failure)") }
        if answers.isEmpty { throw ExitCode.failure }
    }
}
