import ArgumentParser
import Shared

/// `omx lock` / `omx unlock`: pins a job where it runs, or lets it move again.
struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock", abstract: "Pins jobs where they run: neither the Balancer nor omx migrate moves them.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Job ids.")
    var jobs: [String]

    func run() async throws { try await setLock(true, jobs: jobs, global: global, command: "lock") }
}

/// `omx unlock`.
struct UnlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unlock", abstract: "Lets locked jobs move again.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Job ids.")
    var jobs: [String]

    func run() async throws { try await setLock(false, jobs: jobs, global: global, command: "unlock") }
}

private func setLock(_ lock: Bool, jobs: [String], global: GlobalOptions, command: String) async throws {
    bootstrapLogging(level: global.logLevel)
    let session = try ClusterSession(global: global)
    for job in jobs {
        let answer = try await session.callMigrator(command, "Migrator.SetFlags", FlagsRequest(job: job, lock: lock), returning: Job.self, timeout: ClusterSession.settlingTimeout)
        print("job \(answer.id) on node \(answer.where): \(answer.lock ? "locked" : "unlocked")")
    }
    await session.close()
}
