import Glibc
import Shared

/// What /proc says about one job's process tree on this node.
enum ProcessTree {
    /// The process's start time in clock ticks after boot, or nil when it is gone.
    static func startTicks(of pid: Int32) -> UInt64? {
        ProcStat(pid: pid)?.startTicks
    }

    /// True when `pid` is alive and is still the process that started at `startTicks`
    /// (a zombie counts as gone).
    static func isRunning(pid: Int32, startTicks: UInt64) -> Bool {
        guard pid > 0, let stat = ProcStat(pid: pid) else { return false }
        return stat.state != "Z" && stat.state != "X" && stat.startTicks == startTicks
    }

    /// `pid` and all its descendants, parents first.
    static func members(of root: Int32) -> [Int32] {
        var result: [Int32] = []
        var queue = [root]
        while let pid = queue.popLast() {
            result.append(pid)
            for name in (try? listDirectory("/proc/\(pid)/task")) ?? [] {
                guard Int32(name) != nil, let children = try? readTextFile("/proc/\(pid)/task/\(name)/children") else { continue }
                queue.append(contentsOf: children.split(separator: " ").compactMap { Int32($0.trimmedWhitespace) })
            }
        }
        return result
    }

    /// CPU time used by the whole tree, in clock ticks (utime + stime).
    static func cpuTicks(of root: Int32) -> UInt64 {
        members(of: root).reduce(0) { total, pid in
            guard let stat = ProcStat(pid: pid) else { return total }
            return total + stat.userTicks + stat.systemTicks
        }
    }

    /// Threads of the tree that are running or waiting for a CPU (state R) right now.
    static func runnableThreads(of root: Int32) -> Int {
        var count = 0
        for pid in members(of: root) {
            for thread in (try? listDirectory("/proc/\(pid)/task")) ?? [] {
                if let id = pid_t(thread), ProcStat(pid: pid, thread: id)?.state == "R" { count += 1 }
            }
        }
        return count
    }

    /// Resident memory of the whole tree in bytes.
    static func residentBytes(of root: Int32) -> UInt64 {
        members(of: root).reduce(0) { $0 + UInt64(residentKiB(of: $1) ?? 0) * 1024 }
    }

    /// Devices a job may hold and still move: they exist alike on every node.
    private static let portableDevices: Set<String> = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]

    /// Why the tree cannot move to another node, or nil when it can: sockets (a connection
    /// cannot follow the job), devices other than the portable ones, kernel objects CRIU does
    /// not dump, file locks held through this node's /mfs and files open that are locked there
    /// (`MfsLockMarkers` in `runDir`), and another user's processes when this service may not
    /// read their resource limits.
    static func cantmove(root: Int32, runDir: String) -> String? {
        let locked = MfsLockMarkers.lockedFiles(runDir: runDir)
        for pid in members(of: root) {
            if let locked = MfsLockMarkers.locked(by: pid, runDir: runDir) {
                return "pid \(pid) holds a file lock through /mfs (\(locked)), which would not follow the job"
            }
            if !mayReadAnyLimits, let ids = foreignIDs(of: pid) {
                return "pid \(pid) runs as \(ids), and this Migrator lacks CAP_SYS_RESOURCE, without which CRIU cannot read another user's resource limits"
            }
            for name in (try? listDirectory("/proc/\(pid)/fd")) ?? [] {
                guard let fd = Int32(name), let target = readLink("/proc/\(pid)/fd/\(fd)") else { continue }
                if !locked.isEmpty, target.hasPrefix("/"), let inode = inode(of: fd, in: pid), let what = locked[inode] {
                    return "pid \(pid) fd \(fd) is a file locked through /mfs (\(what)): the lock may be this open file's (flock and OFD locks go with it through fork and dup), and would not follow the job"
                }
                if target.hasPrefix("socket:") {
                    return "pid \(pid) fd \(fd) is a \(socketKind(inode: target)) (a connection cannot follow the job)"
                }
                if target.hasPrefix("/dev/") && !portableDevices.contains(target) && !target.hasPrefix("/dev/shm/") {
                    return "pid \(pid) fd \(fd) holds device \(target)"
                }
                if target == "anon_inode:[io_uring]" || target == "anon_inode:[perf_event]" || target == "anon_inode:bpf-map" {
                    return "pid \(pid) fd \(fd) is \(target), which CRIU cannot dump"
                }
            }
        }
        return nil
    }

    /// The inode number of `pid`'s file `fd`, from the kernel's fdinfo (no call reaches the
    /// file's file system, which for /mfs may be a node that does not answer).
    private static func inode(of fd: Int32, in pid: Int32) -> UInt64? {
        let info = (try? readTextFile("/proc/\(pid)/fdinfo/\(fd)")) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("ino:") }
        return line.flatMap { UInt64($0.dropFirst("ino:".count).trimmedWhitespace) }
    }

    /// Whether this process may read any process's resource limits (prlimit), as CRIU must:
    /// CAP_SYS_RESOURCE, which some sandboxes withhold even from root.
    private static let mayReadAnyLimits: Bool = {
        let status = (try? readTextFile("/proc/self/status")) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
        guard let mask = line.flatMap({ UInt64($0.dropFirst("CapEff:".count).trimmedWhitespace, radix: 16) }) else { return true }
        return mask & (1 << 24) != 0  // CAP_SYS_RESOURCE
    }()

    /// "uid U gid G" when `pid`'s real, effective or saved ids differ from this process's
    /// (which prlimit then refuses without CAP_SYS_RESOURCE), else nil.
    private static func foreignIDs(of pid: Int32) -> String? {
        guard let status = try? readTextFile("/proc/\(pid)/status") else { return nil }
        func ids(_ name: String) -> [UInt32] {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
            return line.map { $0.dropFirst(name.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " }).prefix(3).compactMap { UInt32($0) } } ?? []
        }
        let (uids, gids) = (ids("Uid"), ids("Gid"))
        guard uids.contains(where: { $0 != getuid() }) || gids.contains(where: { $0 != getgid() }) else { return nil }
        return "uid \(uids.first.map(String.init) ?? "?") gid \(gids.first.map(String.init) ?? "?")"
    }

    /// "TCP socket", "UDP socket", "Unix socket" ... for "socket:[INODE]".
    private static func socketKind(inode link: String) -> String {
        let inode = link.dropFirst("socket:[".count).dropLast()
        for (file, kind) in [("tcp", "TCP socket"), ("tcp6", "TCP socket"), ("udp", "UDP socket"), ("udp6", "UDP socket"), ("unix", "Unix socket")] {
            guard let table = try? readTextFile("/proc/net/\(file)") else { continue }
            for line in table.split(separator: "\n").dropFirst() {
                let columns = line.split(separator: " ")
                let column = file == "unix" ? 6 : 9
                if columns.count > column && columns[column] == inode { return kind }
            }
        }
        return "socket"
    }
}
