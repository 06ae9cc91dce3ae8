import ArgumentParser
import Glibc
import Shared

/// `omx logs`: a job's output, from any node.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Prints a job's standard output (or --stderr), wherever the job runs.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The job id (e.g. 1.7).")
    var job: String

    @Flag(name: [.short, .customLong("follow")], help: "Keep printing new output until the job ends.")
    var follow = false

    @Flag(help: "Print standard error instead.")
    var stderr = false

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        var offset: UInt64 = 0
        while true {
            let request = ReadLogRequest(job: job, stream: stderr ? "stderr" : "stdout", offset: offset, maxBytes: 1 << 20)
            let answer = try await session.callMigrator("logs", "Migrator.ReadLog", request, returning: ReadLogResponse.self)
            if !answer.data.isEmpty {
                answer.data.withUnsafeBytes { _ = fwrite($0.baseAddress, 1, $0.count, Glibc.stdout) }
                fflush(Glibc.stdout)
                offset += UInt64(answer.data.count)
            }
            if offset < answer.size { continue }
            if !follow || answer.ended { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        await session.close()
    }
}
