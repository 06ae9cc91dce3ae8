import ArgumentParser
import Shared

/// `omx mosctl` (openMosix's `mosctl`): node policies.
struct MosctlCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mosctl",
        abstract: "Controls this node's part in the cluster (openMosix's mosctl).",
        subcommands: [Expel.self])

    /// `omx mosctl expel`: sends the node's guest jobs away.
    struct Expel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sends every guest job running on this node home (or elsewhere when home is down).")

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            bootstrapLogging(level: global.logLevel)
            let session = try ClusterSession(global: global)
            let answer = try await session.callMigrator("mosctl expel", "Migrator.Expel", ExpelRequest(), returning: ExpelResponse.self, timeout: .seconds(1800))
            await session.close()
            for line in answer.moved { print("moved \(line)") }
            for line in answer.failed { printError("stayed \(line)") }
            if answer.moved.isEmpty && answer.failed.isEmpty { print("no guest jobs here") }
            if !answer.failed.isEmpty { throw ExitCode.failure }
        }
    }
}
