import ArgumentParser
import Shared

/// Where a node's load comes from.
public enum LoadSource: String, ExpressibleByArgument, Sendable {
    /// The machine's run queue (jobs and everything else): one node per machine.
    case machine
    /// The node's jobs only: for local clusters, whose nodes share one machine.
    case jobs
}

/// `omx-balancer`: the Balancer service of one node.
public struct BalancerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-balancer",
        abstract: "Runs the Balancer service of one OMX node: load exchange and automatic migration.")

    @OptionGroup var options: ServiceOptions

    @Option(help: "This node's relative CPU speed; 1000 is the reference CPU (omx mosctl setspeed changes it).")
    var speed: UInt32 = 1000

    @Option(name: .customLong("load-source"), help: "machine: the machine's run queue; jobs: this node's jobs only (local clusters).")
    var loadSource: LoadSource = .machine

    @Option(name: .customLong("migration-mbps"), help: "Migration throughput in MiB/s, for the cost of a move (omx bench migrate measures it).")
    var migrationMiBps = 300.0

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .balancer, options: options)
        var configuration = BalancerConfiguration()
        configuration.migrationBytesPerSecond = migrationMiBps * 1_048_576
        let service = BalancerService(host: host, configuration: configuration, speed: speed, loadSource: loadSource)
        try await host.run(background: { await service.run() })
    }
}
