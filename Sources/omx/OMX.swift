import ArgumentParser

/// `omx`: the command-line tool of an OMX cluster (openMosix's setpe, mosrun, migrate, mps, mosmon, mosctl).
@main
struct OMX: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "omx",
        abstract: "Runs and inspects an OMX cluster.",
        subcommands: [
            KeygenCommand.self, MapCommand.self, SetpeCommand.self, StatusCommand.self, ClusterCommand.self, PingCommand.self, RunCommand.self,
            MpsCommand.self, LogsCommand.self, KillCommand.self, MigrateCommand.self, LockCommand.self, UnlockCommand.self, MosctlCommand.self,
            MonCommand.self, SelectCommand.self, MetricsCommand.self, BenchCommand.self,
        ])
}
