import Glibc

/// A process this one started, with its output sent to files.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let command: [String]
    private var exitStatus: Int32?

    private init(pid: pid_t, command: [String]) {
        self.pid = pid
        self.command = command
    }

    /// Starts `path` with `arguments`; standard input is /dev/null.
    /// - Parameters:
    ///   - stdoutPath: file for standard output (appended), or nil to inherit ours.
    ///   - stderrPath: file for standard error (appended), or nil to inherit ours.
    ///   - environment: extra variables on top of ours.
    ///   - inheritEnvironment: false to give the child `environment` alone.
    ///   - detached: start it in a session of its own, so it outlives this process's terminal.
    /// - Throws: `ConfigError` naming the program when it cannot be started.
    public static func spawn(
        _ path: String, _ arguments: [String], stdoutPath: String? = nil, stderrPath: String? = nil,
        environment: [String: String] = [:], inheritEnvironment: Bool = true, detached: Bool = false
    ) throws -> ChildProcess {
        try spawn(
            path, argumentBytes: arguments.map { Array($0.utf8) }, stdoutPath: stdoutPath, stderrPath: stderrPath, environment: environment,
            inheritEnvironment: inheritEnvironment, detached: detached)
    }

    /// Starts `path` with arguments given as the bytes the program gets (which need not be
    /// UTF-8: a file name's, say), as `spawn(_:_:...)` does.
    public static func spawn(
        _ path: String, argumentBytes arguments: [[UInt8]], stdoutPath: String? = nil, stderrPath: String? = nil,
        environment: [String: String] = [:], inheritEnvironment: Bool = true, detached: Bool = false
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child gets standard input, output and error only: an inherited pipe would keep
        // whoever reads our output waiting for as long as the child lives.
        for fd in openDescriptors() where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let stdoutPath { posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_APPEND, 0o644) }
        if let stderrPath { posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        // glibc's POSIX_SPAWN_SETSID (0x80) is not visible to Swift.
        let setsid: Int32 = detached ? 0x80 : 0
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | setsid))

        var variables: [String: String] = [:]
        var cursor = environ
        while inheritEnvironment, let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") { variables[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            cursor += 1
        }
        for (name, value) in environment { variables[name] = value }

        let argv = ([Array(path.utf8)] + arguments).map { bytes in
            (bytes + [0]).withUnsafeBufferPointer { strdup(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) }
        } + [nil]
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw ConfigError("\(path): cannot start: \(String(cString: strerror(rc)))")
        }
        return ChildProcess(pid: pid, command: [path] + arguments.map { WireFileName.decode($0) })
    }

    /// Sends `signal` to the process (nothing once it has been reaped).
    public func send(_ signal: Int32) {
        if exitStatus == nil { kill(pid, signal) }
    }

    /// The exit status if the process has ended (a signal `s` gives 128 + s), else nil.
    public func poll() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        exitStatus = ChildProcess.decode(status)
        return exitStatus
    }

    /// Waits for the process to end and returns its exit status (a signal `s` gives 128 + s).
    @discardableResult
    public func wait() -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = ChildProcess.decode(status)
        return exitStatus!
    }

    /// Waits up to `milliseconds` for the process to end; its exit status, or nil if it still runs.
    public func wait(milliseconds: Int) async -> Int32? {
        let deadline = monotonicNs() + UInt64(milliseconds) * 1_000_000
        while monotonicNs() < deadline {
            if let status = poll() { return status }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return poll()
    }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// The file descriptors open in this process.
private func openDescriptors() -> [Int32] {
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    let own = dirfd(directory)
    var result: [Int32] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if let fd = Int32(name), fd != own { result.append(fd) }
    }
    return result
}

/// The path of executable `name` built beside the running one (e.g. `omx-discovery` next to `omx`).
public func siblingExecutable(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return name }
    let path = String(cString: buffer)
    guard let slash = path.lastIndex(of: "/") else { return name }
    return String(path[..<slash]) + "/" + name
}

/// The resident memory of process `pid` in KiB (VmRSS), or nil when it cannot be read.
public func residentKiB(of pid: pid_t) -> Int? {
    statusKiB(of: pid, field: "VmRSS:")
}

/// The peak resident memory of process `pid` in KiB (VmHWM; writing 5 to
/// /proc/PID/clear_refs starts a new peak), or nil when it cannot be read.
public func peakResidentKiB(of pid: pid_t) -> Int? {
    statusKiB(of: pid, field: "VmHWM:")
}

private func statusKiB(of pid: pid_t, field: String) -> Int? {
    procNumber(field, in: "/proc/\(pid)/status")
}

/// The number of a "Name:   1234 kB" or "Tgid: 1234" field of a /proc file (/proc/meminfo,
/// /proc/PID/status), or nil when the file or the field is not there.
public func procNumber(_ field: String, in path: String) -> Int? {
    guard let text = try? readTextFile(path) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field) {
        return Int(line.dropFirst(field.count).trimmedWhitespace.split(separator: " ").first ?? "")
    }
    return nil
}

/// The CPU time every thread of process `pid` has run so far, in nanoseconds (the sum of
/// /proc/PID/task/*/schedstat, which the scheduler keeps exactly), or nil when it is gone.
/// Threads that already ended are not counted.
public func cpuTimeNs(of pid: pid_t) -> UInt64? {
    guard let tasks = opendir("/proc/\(pid)/task") else { return nil }
    defer { closedir(tasks) }
    var total: UInt64 = 0
    while let entry = readdir(tasks) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        guard Int32(name) != nil, let text = try? readTextFile("/proc/\(pid)/task/\(name)/schedstat") else { continue }
        total += UInt64(text.split(separator: " ").first ?? "") ?? 0
    }
    return total
}

/// The user-mode part of the CPU time process `pid` has run so far, ended threads included, in
/// nanoseconds (utime of /proc/PID/stat: the kernel samples user against system time at each
/// clock tick and scales the split to the exact total), or nil when it is gone.
public func userTimeNs(of pid: pid_t) -> UInt64? {
    guard let text = try? readTextFile("/proc/\(pid)/stat"), let nameEnd = text.lastIndex(of: ")") else { return nil }
    // Fields after the command name, from the third (state) on; utime is the fourteenth.
    let fields = text[text.index(after: nameEnd)...].split(separator: " ")
    guard fields.count > 11, let ticks = UInt64(fields[11]) else { return nil }
    return ticks * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK)))
}
