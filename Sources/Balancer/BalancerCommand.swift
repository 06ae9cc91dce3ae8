import ArgumentParser
import Shared

/// `omx-balancer`: the Balancer service of one node.
@main
struct BalancerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "omx-balancer",
        abstract: "Runs the Balancer service of one OMX node.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let host = try ServiceHost(kind: .balancer, options: options)
        try await host.run()
    }
}
