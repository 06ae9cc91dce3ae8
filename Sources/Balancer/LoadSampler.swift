import Glibc
import Shared

/// What the kernel says about this machine's load and memory.
enum LoadSampler {
    /// Processes running or waiting for a CPU right now (`procs_running` in /proc/stat).
    static func runnableProcesses() -> Double {
        guard let text = try? readTextFile("/proc/stat") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("procs_running ") {
            return Double(line.dropFirst("procs_running ".count).trimmedWhitespace) ?? 0
        }
        return 0
    }

    /// Available and total memory in bytes (MemAvailable, MemTotal).
    static func memory() -> (free: UInt64, total: UInt64) {
        guard let text = try? readTextFile("/proc/meminfo") else { return (0, 0) }
        var free: UInt64 = 0
        var total: UInt64 = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = UInt64(fields[1]) else { continue }
            if fields[0] == "MemAvailable:" { free = kib * 1024 }
            if fields[0] == "MemTotal:" { total = kib * 1024 }
        }
        return (free, total)
    }

    /// Online CPUs.
    static func cpus() -> UInt32 {
        UInt32(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
