import Glibc
import Shared

/// Starts jobs through `omx-jobinit`: a PID namespace of their own whose init is a session
/// leader holding the job's standard files, so CRIU can move the whole tree.
struct JobLauncher {
    /// The omx-jobinit executable.
    let jobInit: String
    /// The most supplementary groups a job runs with (their list is one argument of omx-jobinit,
    /// which the kernel caps at 128 KiB).
    static let maxGroups = 4_096

    /// Checks what would make the start fail: an empty command, more supplementary groups than
    /// `maxGroups`, a nice value outside -20 ... 19, a cwd that is not a directory, a program
    /// not found in the job's PATH.
    /// - Throws: `RPCError` INVALID_ARGUMENT or NOT_FOUND naming the culprit.
    static func validate(_ job: Job) throws {
        guard let program = job.argv.first, !program.isEmpty else { throw RPCError(.invalidArgument, "Migrator.Run: no command given") }
        guard job.groups.count <= maxGroups else {
            throw RPCError(.invalidArgument, "Migrator.Run: \(job.groups.count) supplementary groups; a job may have at most \(maxGroups)")
        }
        guard (-20...19).contains(job.nice) else { throw RPCError(.invalidArgument, "Migrator.Run: nice \(job.nice) is outside -20 ... 19") }
        // Checked by bytes, as the kernel reads them ("/" then a combining mark is one Swift character).
        guard job.cwd.utf8.first == UInt8(ascii: "/") else { throw RPCError(.invalidArgument, "Migrator.Run: cwd \"\(job.cwd)\" is not an absolute path") }
        var info = stat()
        guard stat(WireFileName.cString(job.cwd), &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw RPCError(.notFound, "Migrator.Run: cwd \(job.cwd) is not a directory on node \(job.where)")
        }
        let path = job.env.first { $0.utf8.starts(with: "PATH=".utf8) }.map { String(decoding: $0.utf8.dropFirst(5), as: UTF8.self) } ?? "/usr/local/bin:/usr/bin:/bin"
        let resolved = program.utf8.first == UInt8(ascii: "/") || !program.utf8.contains(UInt8(ascii: "/")) ? program : "\(job.cwd)/\(program)"
        guard searchPath(resolved, in: path) != nil else {
            if program.utf8.contains(UInt8(ascii: "/")) {
                throw RPCError(.notFound, "Migrator.Run: \(resolved): no executable file there on node \(job.where)")
            }
            throw RPCError(.notFound, "Migrator.Run: \(program): command not found (PATH=\(path))")
        }
    }

    /// Starts `job` (its spool, cwd, uid, gid, groups, nice value, env and argv) and fills in its pid.
    /// - Throws: `RPCError` with what omx-jobinit said when the job could not start.
    func launch(_ job: inout Job) async throws {
        // A spool left by an earlier job of the same id (a registry that was reset) is stale.
        // The spool stays root's (0711): root opens files in it, which its user must not be
        // able to swap for symlinks; the job's stdout and stderr are the user's own (0600).
        removeTree(job.spool)
        try makeDirectories(job.spool, mode: 0o711)
        chown(job.spool, 0, 0)
        chmod(job.spool, 0o711)
        let pidfile = "\(job.spool)/init.pid"
        let startLog = "\(job.spool)/start.log"
        let environ = "\(job.spool)/environ"
        unlink(pidfile)
        // The caller's environment goes to the job's command only (omx-jobinit, which runs as
        // root, gets one of its own): LD_PRELOAD and the like must not reach root.
        // Arguments, environment and cwd travel in the wire form of file names: the job gets
        // their bytes, UTF-8 or not.
        try writeFileBytes(environ, job.env.flatMap { WireFileName.bytes($0) + [0] }, mode: 0o600)
        let options = [
            "--spool", job.spool, "--uid", String(job.uid), "--gid", String(job.gid),
            "--groups", job.groups.map(String.init).joined(separator: ","), "--nice", String(job.nice), "--environ", environ, "--pidfile", pidfile,
        ]
        let arguments = options.map { Array($0.utf8) } + [Array("--cwd".utf8), WireFileName.bytes(job.cwd), Array("--".utf8)] + job.argv.map(WireFileName.bytes)
        let process = try ChildProcess.spawn(
            jobInit, argumentBytes: arguments, stdoutPath: startLog, stderrPath: startLog, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"],
            inheritEnvironment: false)
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
