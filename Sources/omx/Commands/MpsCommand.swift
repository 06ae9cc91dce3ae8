import ArgumentParser
import Glibc
import Shared

/// `omx mps` (openMosix's `mps`): every job of the cluster.
struct MpsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mps",
        abstract: "Lists the cluster's jobs: JOB, HOME, WHERE, PID, STATE, CPU%, RSS, AGE, CMD.",
        discussion: "PID is the host pid of the job's namespace init on the node where it runs.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let answer = try await session.callMigrator("mps", "Migrator.List", ListJobsRequest(cluster: true), returning: ListJobsResponse.self)
        await session.close()
        if global.json {
            printJSON(answer.jobs.map(JobRow.init))
        } else {
            let now = wallClockMs()
            let rows = answer.jobs.map { job -> [String] in
                let state = job.state == .running && !job.cantmove.isEmpty ? "cantmove: \(job.cantmove)" : job.state == .exited ? job.exit : job.state.rawValue
                return [
                    job.id, String(job.home), String(job.where), job.state == .exited ? "-" : String(job.pid), state,
                    job.state == .running ? formatPercent(job.cpuPercent) : "-", job.state == .running ? formatBytes(job.rssBytes) : "-",
                    formatSeconds(now - min(now, job.startedMs)),
                    job.argv.isEmpty ? "(uid \(job.uid))" : (job.name.isEmpty ? "" : "[\(job.name)] ") + oneLine(job.argv.joined(separator: " ")),
                ]
            }
            print(formatTable(header: ["JOB", "HOME", "WHERE", "PID", "STATE", "CPU%", "RSS", "AGE", "CMD"], rows: rows), terminator: "")
        }
        if !answer.unreachable.isEmpty {
            printError("omx mps: no answer from the Migrator of node \(answer.unreachable.map(String.init).joined(separator: ", ")); their jobs may be missing")
        }
    }
}

/// `text` (in the wire form of file names) safe on one line of a terminal: newlines and tabs
/// become spaces, other control characters "?" (as ps(1) shows them: a job's arguments must not
/// steer the terminal of whoever lists it), and bytes that are no UTF-8 read \xNN.
func oneLine(_ text: String) -> String {
    var shown = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        let value = scalar.value
        if WireFileName.escapes.contains(value) {
            shown.append(contentsOf: "\\x\(String(value - 0xEF00, radix: 16, uppercase: true))".unicodeScalars)
        } else if [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029].contains(value) {
            shown.append(" ")
        } else if scalar.properties.generalCategory == .control {
            shown.append("?")
        } else {
            shown.append(scalar)
        }
    }
    return String(shown)
}

/// "12.5"-style percent.
func formatPercent(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

/// "12.3M"-style sizes.
func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "K", "M", "G", "T"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes)B" : "\(formatPercent(value))\(units[unit])"
}

/// One job in `omx mps --json`, `omx run --json` and `omx migrate --json`.
struct JobRow: Encodable {
    let job: String
    let home: UInt32
    let `where`: UInt32
    let pid: Int32
    let state: String
    let exit: String?
    let cantmove: String?
    let cpuPercent: Double
    let rssBytes: UInt64
    let startedMs: UInt64
    let name: String
    let argv: [String]
    let migrations: UInt32
    /// `omx lock`: neither the Balancer nor `omx migrate` moves it.
    let lock: Bool
    /// Not moved automatically (the Balancer leaves it).
    let stay: Bool
    let lastMigration: MigrationRow?

    init(_ job: Job) {
        self.job = job.id
        home = job.home
        self.where = job.where
        pid = job.pid
        state = job.state.rawValue
        exit = job.exit.isEmpty ? nil : job.exit
        cantmove = job.cantmove.isEmpty ? nil : job.cantmove
        cpuPercent = job.cpuPercent
        rssBytes = job.rssBytes
        startedMs = job.startedMs
        name = job.name
        argv = job.argv
        migrations = job.migrations
        lock = job.lock
        stay = job.stay
        lastMigration = job.lastMigration.map(MigrationRow.init)
    }
}

/// A migration report in JSON.
struct MigrationRow: Encodable {
    let from: UInt32
    let to: UInt32
    let freezeMs: UInt64
    let totalMs: UInt64
    let bytes: UInt64
    let mode: String

    init(_ report: MigrationReport) {
        from = report.from
        to = report.to
        freezeMs = report.freezeMs
        totalMs = report.totalMs
        bytes = report.bytes
        mode = report.mode
    }
}
