import ArgumentParser
import Glibc
import Shared

/// `omx kill`: signals jobs wherever they run.
struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Sends a signal (default TERM) to jobs wherever they run: omx kill [-SIG] JOB...",
        discussion: "SIG is a number or a name with or without SIG: -9, -KILL, -SIGUSR1.")

    @OptionGroup var global: GlobalOptions

    @Argument(parsing: .captureForPassthrough, help: "[-SIG] JOB...")
    var words: [String] = []

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        var signal = SIGTERM
        var jobs: [String] = []
        for word in words where word != "--" {
            if word.hasPrefix("-") {
                guard let number = signalNumber(String(word.dropFirst())) else { throw ValidationError("unknown signal \(word)") }
                signal = number
            } else {
                jobs.append(word)
            }
        }
        guard !jobs.isEmpty else { throw ValidationError("no job given: omx kill [-SIG] JOB...") }
        let session = try ClusterSession(global: global)
        for job in jobs {
            _ = try await session.callMigrator("kill", "Migrator.Kill", KillRequest(job: job, signal: signal), returning: Job.self, timeout: ClusterSession.settlingTimeout)
        }
        await session.close()
    }
}

/// The number of signal `name` ("9", "KILL", "SIGKILL").
func signalNumber(_ name: String) -> Int32? {
    if let number = Int32(name), number > 0, number < 65 { return number }
    let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2, "ALRM": SIGALRM,
        "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "WINCH": SIGWINCH,
    ]
    let upper = name.uppercased()
    return names[upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper]
}
