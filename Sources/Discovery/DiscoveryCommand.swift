import ArgumentParser
import Shared

/// `omx-discovery`: the Discovery service of one node.
@main
struct DiscoveryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "omx-discovery",
        abstract: "Runs the Discovery service of one OMX node.")

    @OptionGroup var options: ServiceOptions

    func run() async throws {
        let host = try ServiceHost(kind: .discovery, options: options)
        try await host.run()
    }
}
