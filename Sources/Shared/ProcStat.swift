import Glibc

/// The fields of /proc/PID/stat (or /proc/PID/task/TID/stat) OMX reads: a process's state,
/// parent, CPU time, nice value and start time.
public struct ProcStat: Sendable {
    /// R running or runnable, S sleeping, T stopped, Z zombie ...
    public let state: Character
    public let parent: pid_t
    /// Clock ticks spent in user and kernel mode.
    public let userTicks: UInt64
    public let systemTicks: UInt64
    /// The nice value, -20 (most favoured) to 19.
    public let nice: Int32
    /// Start time in clock ticks after boot: tells a process from a later one reusing its pid.
    public let startTicks: UInt64

    /// The stat of `pid` (or of a thread, with `thread`), or nil when it is gone.
    public init?(pid: pid_t, thread: pid_t? = nil) {
        let path = thread.map { "/proc/\(pid)/task/\($0)/stat" } ?? "/proc/\(pid)/stat"
        // The command name may hold spaces and parentheses: the fields follow the last ")".
        guard let text = try? readTextFile(path), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        self.state = state
        self.parent = parent
        userTicks = UInt64(fields[11]) ?? 0
        systemTicks = UInt64(fields[12]) ?? 0
        nice = Int32(fields[16]) ?? 0
        startTicks = UInt64(fields[19]) ?? 0
    }

    /// "<pid>.<start ticks>": a name for one process that a later one reusing the pid does not share.
    public static func key(of pid: pid_t) -> String {
        "\(pid).\(ProcStat(pid: pid)?.startTicks ?? 0)"
    }

    /// `pid` and its ancestors, nearest first.
    public static func lineage(of pid: pid_t) -> [pid_t] {
        var result: [pid_t] = []
        var current = pid
        while current > 1 && result.count < 64 {
            result.append(current)
            guard let stat = ProcStat(pid: current) else { break }
            current = stat.parent
        }
        return result
    }
}

/// The target of symbolic link `path`, or nil.
public func readLink(_ path: String) -> String? {
    readLinkBytes(path).map { String(decoding: $0, as: UTF8.self) }
}

/// The target of symbolic link `path` as the kernel gives it (bytes, which need not be
/// UTF-8), or nil.
public func readLinkBytes(_ path: String) -> [UInt8]? {
    var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink(path, &buffer, buffer.count)
    guard length >= 0 else { return nil }
    return Array(buffer[..<length])
}

/// The spool directory of the job whose namespace init is `pid`, or nil when `pid` is no job
/// init. omx-jobinit keeps `--spool DIR` in its command line, which CRIU restores.
public func jobInitSpool(of pid: pid_t) -> String? {
    guard let bytes = try? readFileBytes("/proc/\(pid)/cmdline") else { return nil }
    let arguments = bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    guard arguments.count > 2, arguments[0].hasSuffix("omx-jobinit"), arguments[1] == "--spool" else { return nil }
    return arguments[2]
}

/// The job process `pid` belongs to: the spool name of its nearest omx-jobinit ancestor
/// ("2.17", the job id) and that init's pid; nil for a process outside jobs (or gone).
public func enclosingJob(of pid: pid_t) -> (job: String, initPID: pid_t)? {
    for process in ProcStat.lineage(of: pid) {
        if let spool = jobInitSpool(of: process), let job = spool.split(separator: "/").last {
            return (String(job), process)
        }
    }
    return nil
}

/// The pid of `pid` inside its innermost PID namespace, or nil when it is gone.
public func namespacePID(of pid: Int32) -> Int32? {
    namespacePIDs(of: pid)?.last
}

/// The pids of `pid` in each PID namespace it is in, the host's first (NSpid in
/// /proc/PID/status), or nil when it is gone.
public func namespacePIDs(of pid: Int32) -> [Int32]? {
    guard let status = try? readTextFile("/proc/\(pid)/status") else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { Int32($0) }
    }
    return nil
}
