import ArgumentParser
import Shared

/// `omx-fsgateway`: serves a node's files; several instances per node may run.
public struct FSGatewayCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-fsgateway",
        abstract: "Serves one OMX node's files to the /mfs mounts of the cluster.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)

    public init() {}

    public struct Serve: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Runs one gateway instance.")

        @OptionGroup var options: ServiceOptions

        @Option(help: "The instance number on this node; each instance has its own port and socket.")
        var instance: UInt32 = 0

        public init() {}

        public func run() async throws {
            let host = try ServiceHost(kind: .fsgateway, instance: instance, options: options)
            try await host.run()
        }
    }
}
