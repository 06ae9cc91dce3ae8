import ArgumentParser
import Shared

/// `omx migrate` (openMosix's `migrate`): moves a running job to another node.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Moves a running job to another node (or home) and reports the freeze and total time.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The job id (e.g. 1.7).")
    var job: String

    @Argument(help: "A node id, or home.")
    var target: String

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let node: UInt32
        if target == "home" {
            node = 0
        } else if let id = UInt32(target), id > 0 {
            node = id
        } else {
            throw ValidationError("\"\(target)\" is neither a node id nor home")
        }
        let session = try ClusterSession(global: global)
        let answer = try await session.callMigrator(
            "migrate", "Migrator.Migrate", MigrateRequest(job: job, target: node), returning: MigrateResponse.self, timeout: ClusterSession.settlingTimeout)
        await session.close()
        let report = answer.report
        if global.json {
            printJSON(JobRow(answer.job))
        } else {
            print("job \(answer.job.id): node \(report.from) -> node \(report.to), pid \(answer.job.pid); \(formatBytes(report.bytes)) sent (\(report.mode)), frozen \(report.freezeMs) ms, total \(report.totalMs) ms")
        }
    }
}
