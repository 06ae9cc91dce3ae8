import Glibc
import Shared

/// `omx bench locks`: lock-and-unlock pairs on one file, fcntl's and flock's, through /mfs (to
/// the node's own gateway on its Unix socket, and to another node's over TCP) against the local
/// disk, in the same run, on a local 2-node cluster.
struct LockBenchmark {
    struct Row: Encodable {
        let test: String
        let local: Double
        let mfsSameNode: Double
        let mfsOtherNode: Double
    }

    let dir: String
    let pairs: Int
    /// Each test runs this many times on each side, the sides taking turns; the median counts.
    let rounds: Int
    let firstAddress: String

    func run(progress: (String) -> Void) async throws -> [Row] {
        let launcher = try LocalClusterLauncher(dir: dir)
        _ = try launcher.up(nodes: 2, gateways: 1, firstAddress: firstAddress)
        try await launcher.waitUntilAlive(nodes: 2, timeoutSeconds: 20)
        let data = "\(launcher.dir)/data"
        try makeDirectories(data)
        let sides = [("local", data), ("mfs same node", "\(launcher.mfsDir(node: 1))/1\(data)"), ("mfs other node", "\(launcher.mfsDir(node: 1))/2\(data)")]
        for (_, directory) in sides { try await waitUntilMounted(directory) }
        var rows: [Row] = []
        for (test, wholeFile) in [("fcntl write lock of one byte, then unlock", false), ("flock exclusive lock, then unlock", true)] {
            var rates: [String: [Double]] = [:]
            for round in 0..<rounds {
                for (name, directory) in sides {
                    rates[name, default: []].append(try pairsPerSecond("\(directory)/lock-\(round)", wholeFile: wholeFile))
                    progress("\(test) on \(name), round \(round + 1): \(String(format: rates[name]!.last!, decimals: 0)) pairs/s")
                }
            }
            rows.append(Row(test: test, local: median(rates["local"]!), mfsSameNode: median(rates["mfs same node"]!), mfsOtherNode: median(rates["mfs other node"]!)))
        }
        return rows
    }

    /// Lock and unlock pairs per second on the file at `path`, made for the purpose.
    private func pairsPerSecond(_ path: String, wholeFile: Bool) throws -> Double {
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw ConfigError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var range = flock()
        range.l_len = 1
        let started = monotonicNs()
        for _ in 0..<pairs {
            for lock in [true, false] {
                range.l_type = Int16(lock ? F_WRLCK : F_UNLCK)
                let done: Int32 = wholeFile ? flock(fd, lock ? LOCK_EX | LOCK_NB : LOCK_UN) : fcntl(fd, F_SETLK, &range)
                guard done == 0 else { throw ConfigError("\(wholeFile ? "flock" : "fcntl lock") of \(path): \(String(cString: strerror(errno)))") }
            }
        }
        return Double(pairs) / (Double(monotonicNs() - started) / 1e9)
    }
}
