import Glibc
import Shared

/// What /proc says about one job's process tree on this node.
enum ProcessTree {
    /// The fields of /proc/PID/stat after the command name, or nil when the process is gone.
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = try? readTextFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// The process's start time in clock ticks after boot (stat field 22), or nil when it is gone.
    static func startTicks(of pid: Int32) -> UInt64? {
        statFields(pid).flatMap { $0.count > 19 ? UInt64($0[19]) : nil }
    }

    /// True when `pid` is alive and is still the process that started at `startTicks`
    /// (a zombie counts as gone).
    static func isRunning(pid: Int32, startTicks: UInt64) -> Bool {
        guard pid > 0, let fields = statFields(pid), fields.count > 19 else { return false }
        return fields[0] != "Z" && fields[0] != "X" && UInt64(fields[19]) == startTicks
    }

    /// `pid` and all its descendants, parents first.
    static func members(of root: Int32) -> [Int32] {
        var result: [Int32] = []
        var queue = [root]
        while let pid = queue.popLast() {
            result.append(pid)
            guard let directory = opendir("/proc/\(pid)/task") else { continue }
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                guard Int32(name) != nil, let children = try? readTextFile("/proc/\(pid)/task/\(name)/children") else { continue }
                queue.append(contentsOf: children.split(separator: " ").compactMap { Int32($0.trimmedWhitespace) })
            }
        }
        return result
    }

    /// CPU time used by the whole tree, in clock ticks (utime + stime).
    static func cpuTicks(of root: Int32) -> UInt64 {
        members(of: root).reduce(0) { total, pid in
            guard let fields = statFields(pid), fields.count > 12 else { return total }
            return total + (UInt64(fields[11]) ?? 0) + (UInt64(fields[12]) ?? 0)
        }
    }

    /// Threads of the tree that are running or waiting for a CPU (state R) right now.
    static func runnableThreads(of root: Int32) -> Int {
        var count = 0
        for pid in members(of: root) {
            for thread in (try? listDirectory("/proc/\(pid)/task")) ?? [] {
                guard let text = try? readTextFile("/proc/\(pid)/task/\(thread)/stat"), let close = text.lastIndex(of: ")") else { continue }
                if text[text.index(after: close)...].dropFirst().first == "R" { count += 1 }
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

    /// Why CRIU could not move the tree to another node, or nil when it can: sockets (a
    /// connection cannot follow the job), devices other than the portable ones, and kernel
    /// objects CRIU does not dump.
    static func cantmove(root: Int32) -> String? {
        for pid in members(of: root) {
            guard let directory = opendir("/proc/\(pid)/fd") else { continue }
            defer { closedir(directory) }
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                guard let fd = Int32(name), let target = readLink("/proc/\(pid)/fd/\(fd)") else { continue }
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

/// The target of symbolic link `path`, or nil.
func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink(path, &buffer, buffer.count - 1)
    guard length >= 0 else { return nil }
    buffer[length] = 0
    return String(cString: buffer)
}
