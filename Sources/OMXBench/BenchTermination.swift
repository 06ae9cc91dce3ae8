import Glibc
import Shared
import Synchronization

/// What a benchmark started, stopped when the benchmark is: a ^C reaches its servers too (one
/// process group), a SIGTERM sent to the benchmark alone does not, and a local cluster's
/// services run in sessions of their own, out of either's reach. On SIGTERM or SIGINT every
/// process spawned through here is killed, the benchmark's own cleanup runs, its directory is
/// removed, and it exits with 128 + the signal.
public final class BenchTermination: Sendable {
    private struct State {
        var terminating = false
        var processes: [ChildProcess] = []
        var directory: String?
    }

    private let state = Mutex(State())
    /// What the cleanup stops, for the message ("the benchmark's cluster in DIR"); nil: the
    /// processes spawned here and the directory.
    private let stopping: String?
    private let cleanup: @Sendable () -> Void
    /// Watches the signals on a thread of its own: the cleanup runs even while the benchmark
    /// holds every thread of the pool.
    private let loop: EventLoop

    /// Watches the signals from the moment it returns; on one, `cleanup` runs after the
    /// processes spawned here are stopped and before the directory goes.
    public static func watch(stopping: String? = nil, cleanup: @escaping @Sendable () -> Void = {}) async throws -> BenchTermination {
        let termination = BenchTermination(loop: try EventLoop(), stopping: stopping, cleanup: cleanup)
        try await SignalWatcher.watchTermination(on: termination.loop) { [termination] signal in termination.terminate(signal) }
        return termination
    }

    private init(loop: EventLoop, stopping: String?, cleanup: @escaping @Sendable () -> Void) {
        self.loop = loop
        self.stopping = stopping
        self.cleanup = cleanup
    }

    /// Whether a signal is being handled: the benchmark's own errors meanwhile (a server it
    /// waits for died) are the cleanup's doing, and the process is about to exit.
    var isTerminating: Bool { state.withLock { $0.terminating } }

    /// Creates the benchmark's directory (`/tmp/omx-bench-XXXXXX`), removed on termination.
    func makeDirectory() throws -> String {
        try state.withLock { state in
            var template = "/tmp/omx-bench-XXXXXX".utf8CString
            guard !state.terminating, let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw ConfigError("cannot create a temporary directory in /tmp")
            }
            state.directory = String(cString: made)
            return state.directory!
        }
    }

    /// Spawns a process to be stopped on termination (none once it has begun).
    func spawn(_ command: [String], stdoutPath: String, stderrPath: String? = nil) throws -> ChildProcess {
        try state.withLock { state in
            guard !state.terminating else { throw ConfigError("the benchmark is being stopped") }
            let process = try ChildProcess.spawn(command[0], Array(command.dropFirst()), stdoutPath: stdoutPath, stderrPath: stderrPath)
            state.processes.append(process)
            return process
        }
    }

    /// Stops watching once the benchmark ended by itself; waits for the exit instead when a
    /// signal's cleanup is under way (the benchmark's end, or its error, is that cleanup's doing).
    public func finish() async {
        if isTerminating { await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in } }
        await loop.shutdown()
    }

    private func terminate(_ signal: Int32) {
        let (processes, directory) = state.withLock { state in
            state.terminating = true
            return (state.processes, state.directory)
        }
        let what = stopping ?? "its servers\(directory.map { " and removing \($0)" } ?? "")"
        fputs("omx bench: \(signal == SIGINT ? "interrupted" : "terminated"); stopping \(what)\n", stderr)
        for process in processes { process.send(SIGKILL) }
        for process in processes { process.wait() }
        cleanup()
        if let directory { removeTree(directory) }
        Glibc.exit(128 + signal)
    }
}
