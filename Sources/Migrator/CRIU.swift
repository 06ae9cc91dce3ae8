import Glibc
import Shared

/// Runs CRIU (`criu dump` / `criu restore`) on job trees, each run logging to its image
/// directory so a failure can say why.
public struct CRIU: Sendable {
    /// The criu executable.
    public let executable: String

    /// The criu to use: `path` if given, else `omx-criu` (the CRIU that works on this kernel,
    /// installed by scripts/install-criu.sh) or `criu`, from PATH or the usual system folders
    /// (a service's PATH may be minimal).
    public static func locate(_ path: String?) -> CRIU {
        if let path { return CRIU(executable: path) }
        let folders = (getenv("PATH").map { String(cString: $0) } ?? "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for name in ["omx-criu", "criu"] {
            if let found = searchPath(name, in: folders) { return CRIU(executable: found) }
        }
        return CRIU(executable: "criu")
    }

    /// Checkpoints the tree rooted at `pid` into `directory`, leaving it stopped (not killed).
    /// On failure CRIU lets the tree run on.
    /// - Parameter parent: an earlier pre-dump whose pages this dump need not repeat.
    /// - Throws: `RPCError` (INTERNAL) with CRIU's own error lines.
    func dump(pid: Int32, into directory: String, parent: String? = nil) async throws {
        var arguments = ["dump", "-t", String(pid), "-D", directory, "--leave-stopped", "-v2", "-o", "dump.log"]
        if let parent { arguments += ["--prev-images-dir", parent, "--track-mem"] }
        try await run(arguments, log: "\(directory)/dump.log", what: "criu dump of pid \(pid)")
    }

    /// Copies the memory of the tree rooted at `pid` into `directory` while it runs on.
    /// - Throws: `RPCError` (INTERNAL) with CRIU's own error lines.
    func preDump(pid: Int32, into directory: String, parent: String?) async throws {
        var arguments = ["pre-dump", "-t", String(pid), "-D", directory, "--track-mem", "-v2", "-o", "pre-dump.log"]
        if let parent { arguments += ["--prev-images-dir", parent] }
        try await run(arguments, log: "\(directory)/pre-dump.log", what: "criu pre-dump of pid \(pid)")
    }

    /// True when the kernel tracks dirty memory, which pre-copy migration needs.
    func tracksDirtyMemory() async -> Bool {
        guard let process = try? ChildProcess.spawn(executable, ["check", "--feature", "mem_dirty_track"], stdoutPath: "/dev/null", stderrPath: "/dev/null") else { return false }
        return await process.wait(milliseconds: 10_000) == 0
    }

    /// Restores the tree imaged in `directory`, left stopped; returns its root's host pid.
    /// - Throws: `RPCError` (INTERNAL) with CRIU's own error lines.
    func restore(from directory: String) async throws -> Int32 {
        let pidfile = "\(directory)/restored.pid"
        try await run(
            ["restore", "-D", directory, "-d", "--leave-stopped", "--pidfile", pidfile, "-v2", "-o", "restore.log"],
            log: "\(directory)/restore.log", what: "criu restore")
        guard let text = try? readTextFile(pidfile), let pid = Int32(text.trimmedWhitespace) else {
            throw RPCError(.internal, "criu restore wrote no pid to \(pidfile)")
        }
        return pid
    }

    private func run(_ arguments: [String], log: String, what: String) async throws {
        let output = "\(log).out"
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(executable, arguments, stdoutPath: output, stderrPath: output)
        } catch {
            throw RPCError(.internal, "\(what): \(error)")
        }
        let status = await process.wait(milliseconds: 600_000) ?? {
            process.send(SIGKILL)
            return process.wait()
        }()
        guard status == 0 else {
            throw RPCError(.internal, "\(what) failed (\(executable) exit \(status)): \(CRIU.errors(in: [log, output]))")
        }
    }

    /// CRIU's error lines from its log files, the harmless RLIMIT line left out.
    static func errors(in paths: [String]) -> String {
        var lines: [String] = []
        for path in paths {
            guard let text = try? readTextFile(path) else { continue }
            for line in text.split(separator: "\n") where (line.contains("Error") || line.contains("error")) && !line.contains("RLIMIT_NOFILE") {
                let trimmed = line.trimmedWhitespace
                if !lines.contains(trimmed) { lines.append(trimmed) }
            }
        }
        if lines.isEmpty { return "no error line in \(paths.joined(separator: ", "))" }
        return lines.suffix(3).joined(separator: " | ")
    }
}

/// The first executable called `name` in the colon-separated `path` list (both in the wire
/// form of file names, read by their bytes).
func searchPath(_ name: String, in path: String) -> String? {
    if name.utf8.contains(UInt8(ascii: "/")) { return access(WireFileName.cString(name), X_OK) == 0 ? name : nil }
    for directory in path.utf8.split(separator: UInt8(ascii: ":")) {
        let candidate = "\(String(decoding: directory, as: UTF8.self))/\(name)"
        let bytes = WireFileName.cString(candidate)
        var info = stat()
        if stat(bytes, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(bytes, X_OK) == 0 { return candidate }
    }
    return nil
}
