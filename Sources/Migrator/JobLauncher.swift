import Glibc
import Shared

/// Starts jobs through `omx-jobinit`: a PID namespace of their own whose init is a session
/// leader holding the job's standard files, so CRIU can move the whole tree.
struct JobLauncher {
    /// The omx-jobinit executable.
    let jobInit: String

    /// Checks what would make the start fail: an empty command, a cwd that is not a directory,
    /// a program not found in the job's PATH.
    /// - Throws: `RPCError` INVALID_ARGUMENT or NOT_FOUND naming the culprit.
    static func validate(_ job: Job) throws {
        guard let program = job.argv.first, !program.isEmpty else { throw RPCError(.invalidArgument, "Migrator.Run: no command given") }
        guard job.cwd.hasPrefix("/") else { throw RPCError(.invalidArgument, "Migrator.Run: cwd \"\(job.cwd)\" is not an absolute path") }
        var info = stat()
        guard stat(job.cwd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw RPCError(.notFound, "Migrator.Run: cwd \(job.cwd) is not a directory on node \(job.where)")
        }
        let path = job.env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/local/bin:/usr/bin:/bin"
        let resolved = program.hasPrefix("/") || !program.contains("/") ? program : "\(job.cwd)/\(program)"
        guard searchPath(resolved, in: path) != nil else {
            throw RPCError(.notFound, "Migrator.Run: \(program): command not found (PATH=\(path))")
        }
    }

    /// Starts `job` (its spool, cwd, uid, gid, env and argv) and fills in its pid.
    /// - Throws: `RPCError` with what omx-jobinit said when the job could not start.
    func launch(_ job: inout Job) async throws {
        // A spool left by an earlier job of the same id (a registry that was reset) is stale.
        removeTree(job.spool)
        try makeDirectories(job.spool)
        chown(job.spool, job.uid, job.gid)
        let pidfile = "\(job.spool)/init.pid"
        let startLog = "\(job.spool)/start.log"
        unlink(pidfile)
        let arguments = ["--spool", job.spool, "--cwd", job.cwd, "--uid", String(job.uid), "--gid", String(job.gid), "--pidfile", pidfile, "--"] + job.argv
        var environment: [String: String] = [:]
        for entry in job.env {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            environment[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        let process = try ChildProcess.spawn(jobInit, arguments, stdoutPath: startLog, stderrPath: startLog, environment: environment, inheritEnvironment: false)
        let status = await process.wait(milliseconds: 10_000)
        let said = ((try? readTextFile(startLog)) ?? "").trimmedWhitespace
        unlink(startLog)
        guard status == 0, let text = try? readTextFile(pidfile), let pid = Int32(text.trimmedWhitespace), let ticks = ProcessTree.startTicks(of: pid) else {
            throw RPCError(.internal, "cannot start job \(job.id) with \(jobInit): \(said.isEmpty ? "exit status \(status.map(String.init) ?? "none after 10 s")" : said)")
        }
        unlink(pidfile)
        job.pid = pid
        job.pidStartTicks = ticks
        job.state = .running
        job.startedMs = wallClockMs()
        job.arrivedMs = job.startedMs
        job.startedOn = job.where
    }
}
