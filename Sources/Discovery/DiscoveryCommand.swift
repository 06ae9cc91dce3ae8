import ArgumentParser
import Shared

/// `omx-discovery`: the Discovery service of one node.
public struct DiscoveryCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-discovery",
        abstract: "Runs the Discovery service of one OMX node.")

    @OptionGroup var options: ServiceOptions

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .discovery, options: options)
        let service = DiscoveryService(host: host)
        try await host.run(background: { await service.run() }, beforeStop: { await service.stop() })
    }
}
