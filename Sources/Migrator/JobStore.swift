import Glibc
import Shared

/// The Migrator's registry on disk: one `omx.migrator.Job` message per file under
/// `<state>/jobs/`, the home job counter, and the decisions of migrations sent from here
/// under `<state>/outcomes/`. Every write is atomic and durable (temporary file, fsync,
/// rename, fsync of the directory), so a Migrator killed at any moment, or a power cut, leaves
/// a consistent registry.
/// Jobs restored here but not yet committed by their source live under `<state>/incoming/`.
final class JobStore {
    let stateDir: String
    private var jobsDir: String { "\(stateDir)/jobs" }
    private var outcomesDir: String { "\(stateDir)/outcomes" }
    private var incomingDir: String { "\(stateDir)/incoming" }

    /// Opens (and creates) the registry under `stateDir`.
    /// - Throws: `ConfigError` naming the directory.
    init(stateDir: String) throws {
        self.stateDir = stateDir
        try makeDirectories(jobsDir)
        try makeDirectories(outcomesDir)
        try makeDirectories(incomingDir)
        try makeDirectories("\(stateDir)/images")
    }

    /// Every job on disk, with the files that could not be read.
    func loadJobs() -> (jobs: [Job], unreadable: [String]) { load(jobsDir) }

    /// Every job restored here that waits for its source's decision.
    func loadIncoming() -> (jobs: [Job], unreadable: [String]) { load(incomingDir) }

    private func load(_ directory: String) -> (jobs: [Job], unreadable: [String]) {
        var jobs: [Job] = []
        var unreadable: [String] = []
        for name in (try? listDirectory(directory)) ?? [] where name.hasSuffix(".job") {
            let path = "\(directory)/\(name)"
            do {
                jobs.append(try Job(wire: try readFileBytes(path)))
            } catch {
                unreadable.append("\(path): \(error)")
            }
        }
        return (jobs, unreadable)
    }

    /// Saves `job`, replacing its earlier record.
    func save(_ job: Job) throws {
        try writeAtomically("\(jobsDir)/\(job.id).job", job.wire())
    }

    /// Saves a job restored here, stopped until its source decides (keyed by its transfer).
    func saveIncoming(_ job: Job) throws {
        try writeAtomically("\(incomingDir)/\(job.transfer).job", job.wire())
    }

    /// Forgets the restored job of `transfer`.
    func removeIncoming(_ transfer: String) {
        unlink("\(incomingDir)/\(transfer).job")
    }

    /// Forgets job `id`.
    func remove(_ id: String) {
        unlink("\(jobsDir)/\(id).job")
    }

    /// The next home job number (1, 2, ...), kept across restarts.
    func nextJobNumber() throws -> UInt64 {
        let path = "\(stateDir)/next-job"
        let current = (try? readTextFile(path)).flatMap { UInt64($0.trimmedWhitespace) } ?? 1
        try writeAtomically(path, Array("\(current + 1)\n".utf8))
        return current
    }

    /// Records what the source decided for migration `transfer`.
    func recordOutcome(_ transfer: String, _ outcome: TransferOutcome) throws {
        try writeAtomically("\(outcomesDir)/\(transfer)", Array((outcome == .committed ? "committed\n" : "aborted\n").utf8))
    }

    /// What was decided for migration `transfer` sent from here.
    func outcome(of transfer: String) -> TransferOutcome {
        switch (try? readTextFile("\(outcomesDir)/\(transfer)"))?.trimmedWhitespace {
        case "committed": return .committed
        case "aborted": return .aborted
        default: return .undecided
        }
    }

    /// How long the decision of a migration sent from here is kept: a target asks for it
    /// within seconds, or when its Migrator starts again after a stop.
    static let outcomeRetentionSeconds = 7 * 24 * 3600

    /// Removes the decisions older than `outcomeRetentionSeconds`; returns how many went.
    @discardableResult
    func pruneOutcomes(now: time_t = time(nil)) -> Int {
        var removed = 0
        for name in (try? listDirectory(outcomesDir)) ?? [] {
            var info = stat()
            let path = "\(outcomesDir)/\(name)"
            guard stat(path, &info) == 0, now - info.st_mtim.tv_sec > JobStore.outcomeRetentionSeconds, unlink(path) == 0 else { continue }
            removed += 1
        }
        return removed
    }

    /// The directory for migration images of `transfer`.
    func imagesDir(_ transfer: String) -> String { "\(stateDir)/images/\(transfer)" }

    private func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temporary = "\(path).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigError("\(temporary): cannot write: \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ConfigError("\(path): cannot write: \(String(cString: strerror(errno)))")
        }
        // The rename itself reaches the disk only with its directory.
        let directory = open(String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
