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

    @Option(help: "This node's relative CPU speed; 1000 is the reference CPU (omx mosctl setspeed changes it; default: the configuration's, else 1000).")
    var speed: UInt32?

    @Option(name: .customLong("load-source"), help: "machine: the machine's run queue; jobs: this node's jobs only (local clusters; default: the configuration's, else machine).")
    var loadSource: LoadSource?

    @Option(name: .customLong("migration-mbps"), help: "Migration throughput in MiB/s, for the cost of a move (omx bench migrate measures it; default: the configuration's, else 300).")
    var migrationMiBps: Double?

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .balancer, options: options)
        let settings = OMXConfig.active.balancer
        var configuration = BalancerConfiguration(settings)
        if let migrationMiBps { configuration.migrationBytesPerSecond = migrationMiBps * 1_048_576 }
        let service = BalancerService(
            host: host, configuration: configuration, speed: speed ?? settings.speed ?? 1000,
            loadSource: loadSource ?? settings.loadSource.flatMap(LoadSource.init(rawValue:)) ?? .machine)
        try await host.run(background: { await service.run() })
    }
}

extension BalancerConfiguration {
    /// The defaults with what the configuration file's [balancer] section sets.
    init(_ settings: OMXConfig.BalancerSettings) {
        self.init()
        if let value = settings.migrationMiBps { migrationBytesPerSecond = value * 1_048_576 }
        if let value = settings.loadDecay { loadDecay = value }
        if let value = settings.hysteresis { hysteresis = value }
        if let value = settings.placementMargin { placementMargin = value }
        if let value = settings.minResidenceMs { minResidenceMs = value }
        if let value = settings.benefitOverCost { benefitOverCost = value }
        if let value = settings.lowMemoryShare { lowMemoryShare = value }
        if let value = settings.ioLocalityShare { ioLocalityShare = value }
        if let value = settings.fanout { fanout = value }
        if let value = settings.staleAfterMs { staleAfterMs = value }
    }
}
