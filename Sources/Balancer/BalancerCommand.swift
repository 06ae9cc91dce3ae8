import ArgumentParser
import Shared

/// `omx-balancer`: the Balancer service of one node.
public struct BalancerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-balancer",
        abstract: "Runs the Balancer service of one OMX node.")

    @OptionGroup var options: ServiceOptions

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .balancer, options: options)
        try await host.run()
    }
}
