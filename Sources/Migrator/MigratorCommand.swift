import ArgumentParser
import Shared

/// `omx-migrator`: the Migrator service of one node.
public struct MigratorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-migrator",
        abstract: "Runs the Migrator service of one OMX node.")

    @OptionGroup var options: ServiceOptions

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .migrator, options: options)
        try await host.run()
    }
}
