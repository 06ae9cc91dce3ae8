import FoundationEssentials
import Glibc
import Shared

/// `omx bench mfs`: fio through `/mfs/<other node>/` against the local disk and against sshfs
/// over loopback, in the same run; plus a metadata run (create, stat, unlink 10,000 files).
/// Each side works on a new ext4 file system of its own on the same disk.
struct MfsBenchmark {
    struct Row: Encodable {
        let test: String
        let unit: String
        let local: Double
        let mfs: Double
        let sshfs: Double
    }

    let dir: String
    let sizeMiB: Int
    let files: Int
    let firstAddress: String
    /// Each test runs this many times on each side, the sides taking turns; the median counts.
    let rounds: Int

    func run(progress: (String) -> Void) async throws -> [Row] {
        for tool in ["/usr/bin/fio", "/usr/bin/sshfs", "/usr/sbin/sshd", "/usr/bin/ssh-keygen"] where access(tool, X_OK) != 0 {
            throw ConfigError("\(tool) is missing: omx bench mfs needs fio, sshfs and openssh-server (apt-get install fio sshfs openssh-server)")
        }
        warmMemory(progress: progress)
        let launcher = try LocalClusterLauncher(dir: dir)
        _ = try launcher.up(nodes: 2, gateways: 1, firstAddress: firstAddress)
        try await launcher.waitUntilAlive(nodes: 2, timeoutSeconds: 20)
        let data = "\(launcher.dir)/data"
        // Each side works on a file system of its own, all alike and new (on the same disk).
        var filesystems: [ScratchFilesystem] = []
        defer { for filesystem in filesystems { filesystem.remove() } }
        for name in ["local", "mfs", "ssh"] {
            filesystems.append(try ScratchFilesystem(image: "\(launcher.dir)/\(name).img", mountpoint: "\(data)/\(name)", sizeMiB: sizeMiB * rounds + 512))
        }
        let targets = ["local": "\(data)/local", "mfs": "\(launcher.mfsDir(node: 1))/2\(data)/mfs", "sshfs": "\(launcher.dir)/sshfs-mount"]
        try makeDirectories("\(launcher.dir)/sshfs-mount")
        try await waitUntilMounted(targets["mfs"]!)
        let sshd = try startSSHFS(export: "\(data)/ssh", at: targets["sshfs"]!, scratch: launcher.dir)
        defer {
            _ = try? ChildProcess.spawn("/usr/bin/fusermount3", ["-u", "-z", targets["sshfs"]!]).wait()
            sshd.send(SIGTERM)
            sshd.wait()
        }
        var rows: [Row] = []
        let tests: [(name: String, unit: String, arguments: [String], field: KeyPath<FioJob, Double>)] = [
            ("sequential write, 1 MiB blocks", "MiB/s", ["--rw=write", "--bs=1M", "--size=\(sizeMiB)M", "--end_fsync=1"], \.writeMiBps),
            ("sequential read, 1 MiB blocks", "MiB/s", ["--rw=read", "--bs=1M", "--size=\(sizeMiB)M", "--invalidate=1"], \.readMiBps),
            ("random read, 4 KiB blocks", "IOPS", ["--rw=randread", "--bs=4k", "--size=\(sizeMiB)M", "--runtime=5", "--time_based", "--invalidate=1"], \.readIOPS),
        ]
        let sides = ["local", "mfs", "sshfs"]
        for test in tests {
            var values: [String: [Double]] = [:]
            for round in 0..<rounds {
                for name in sides {
                    dropCaches()
                    // Round r writes, then reads, a file of its own.
                    let job = try await fio(["--name=omx-\(round)"] + test.arguments, in: targets[name]!)
                    values[name, default: []].append(job[keyPath: test.field])
                    progress("\(test.name) on \(name), round \(round + 1): \(String(format: values[name]!.last!, decimals: 1)) \(test.unit)")
                }
            }
            rows.append(Row(test: test.name, unit: test.unit, local: median(values["local"]!), mfs: median(values["mfs"]!), sshfs: median(values["sshfs"]!)))
        }
        var rates: [String: [Double]] = [:]
        for round in 0..<rounds {
            for name in sides {
                dropCaches()
                rates[name, default: []].append(try metadata(in: "\(targets[name]!)/meta-\(round)"))
                progress("metadata (create, stat, unlink \(files) files) on \(name), round \(round + 1): \(String(format: rates[name]!.last!, decimals: 0)) files/s")
            }
        }
        rows.append(Row(test: "metadata: create, stat, unlink \(files) files", unit: "files/s", local: median(rates["local"]!), mfs: median(rates["mfs"]!), sshfs: median(rates["sshfs"]!)))
        return rows
    }

    /// Writes once to every page of as much memory as the runs will fill with cached file
    /// pages (at most half of what is available), then gives it back. A virtual machine's host
    /// may back guest memory only when it is first written: every first write to a page then
    /// costs a host page fault, several times the copy itself, and a run that happens to get
    /// fresh pages for its page cache would pay for it while the others do not. Real machines
    /// have no such cost; after this, no run does either.
    private func warmMemory(progress: (String) -> Void) {
        let wanted = (3 * sizeMiB + 1024) << 20
        let available = (procNumber("MemAvailable:", in: "/proc/meminfo") ?? 0) << 10
        let bytes = min(wanted, available / 2)
        guard bytes > 0 else { return }
        progress("writing once to \(bytes >> 20) MiB of memory, so that no run gets never-written pages")
        guard let memory = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), memory != MAP_FAILED else { return }
        for offset in stride(from: 0, to: bytes, by: Int(getpagesize())) { memory.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
        munmap(memory, bytes)
    }

    /// Writes every dirty page out and empties the page cache, so that each run starts alike:
    /// nothing cached of earlier runs' files, and their pages (already written once, see
    /// `warmMemory`) free for this one.
    private func dropCaches() {
        sync()
        try? writeTextFile("/proc/sys/vm/drop_caches", "3\n")
    }

    /// A throwaway sshd on 127.0.0.1:2222 with its own keys, and sshfs mounting `export` at `mountpoint`.
    private func startSSHFS(export: String, at mountpoint: String, scratch: String) throws -> ChildProcess {
        let keys = "\(scratch)/ssh"
        try makeDirectories(keys, mode: 0o700)
        try makeDirectories("/run/sshd", mode: 0o755)
        for key in ["host", "client"] where !fileExists("\(keys)/\(key)") {
            guard try ChildProcess.spawn("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", "\(keys)/\(key)"], stdoutPath: "/dev/null", stderrPath: "/dev/null").wait() == 0 else {
                throw ConfigError("ssh-keygen failed for \(keys)/\(key)")
            }
        }
        try writeTextFile("\(keys)/authorized_keys", try readTextFile("\(keys)/client.pub"), mode: 0o600)
        try writeTextFile("\(keys)/sshd_config", """
            Port 2222
            ListenAddress 127.0.0.1
            HostKey \(keys)/host
            AuthorizedKeysFile \(keys)/authorized_keys
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            Subsystem sftp internal-sftp
            PidFile \(keys)/sshd.pid
            StrictModes no

            """)
        unlink("\(keys)/sshd.pid")
        let sshd = try ChildProcess.spawn("/usr/sbin/sshd", ["-D", "-e", "-f", "\(keys)/sshd_config"], stdoutPath: "\(keys)/sshd.log", stderrPath: "\(keys)/sshd.log")
        // sshd writes its pid file once it listens.
        var waitedMs = 0
        while !fileExists("\(keys)/sshd.pid") && sshd.poll() == nil && waitedMs < 10_000 {
            usleep(10_000)
            waitedMs += 10
        }
        guard fileExists("\(keys)/sshd.pid") else {
            let how = sshd.poll() == nil ? "did not listen on 127.0.0.1:2222 within 10 s" : "exited before it listened on 127.0.0.1:2222"
            sshd.send(SIGTERM)
            throw ConfigError("sshd \(how): \((try? readTextFile("\(keys)/sshd.log")) ?? "")")
        }
        let mount = try ChildProcess.spawn("/usr/bin/sshfs", [
            "-p", "2222", "-o", "IdentityFile=\(keys)/client,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null", "root@127.0.0.1:\(export)", mountpoint,
        ], stdoutPath: "\(keys)/sshfs.log", stderrPath: "\(keys)/sshfs.log")
        guard mount.wait() == 0 else {
            sshd.send(SIGTERM)
            throw ConfigError("sshfs could not mount over loopback: \((try? readTextFile("\(keys)/sshfs.log")) ?? "")")
        }
        return sshd
    }

    struct FioJob {
        var writeMiBps = 0.0
        var readMiBps = 0.0
        var readIOPS = 0.0
    }

    private struct FioOutput: Decodable {
        struct Job: Decodable {
            struct Side: Decodable {
                let bw_bytes: Double
                let iops: Double
            }
            let read: Side
            let write: Side
        }
        let jobs: [Job]
    }

    private func fio(_ arguments: [String], in directory: String) async throws -> FioJob {
        let output = "\(dir)/fio.json"
        let process = try ChildProcess.spawn("/usr/bin/fio", ["--directory=\(directory)", "--ioengine=psync", "--output-format=json", "--output=\(output)"] + arguments, stdoutPath: "/dev/null", stderrPath: "\(dir)/fio.err")
        guard let status = await process.wait(milliseconds: 900_000), status == 0 else {
            throw ConfigError("fio failed in \(directory): \((try? readTextFile("\(dir)/fio.err")) ?? "")")
        }
        let parsed = try JSONDecoder().decode(FioOutput.self, from: Data(try readFileBytes(output)))
        guard let job = parsed.jobs.first else { throw ConfigError("fio reported no job") }
        return FioJob(writeMiBps: job.write.bw_bytes / 1_048_576, readMiBps: job.read.bw_bytes / 1_048_576, readIOPS: job.read.iops)
    }

    /// Files per second over creating, stat-ing and unlinking `files` files in `directory`.
    private func metadata(in directory: String) throws -> Double {
        try makeDirectories(directory)
        let started = monotonicNs()
        for index in 0..<files {
            let fd = open("\(directory)/f\(index)", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { throw ConfigError("\(directory)/f\(index): \(String(cString: strerror(errno)))") }
            close(fd)
        }
        var info = stat()
        for index in 0..<files where stat("\(directory)/f\(index)", &info) != 0 { throw ConfigError("stat \(directory)/f\(index) failed") }
        for index in 0..<files where unlink("\(directory)/f\(index)") != 0 { throw ConfigError("unlink \(directory)/f\(index) failed") }
        return Double(3 * files) / (Double(monotonicNs() - started) / 1e9)
    }
}

/// The middle of `values` (the mean of the two middle ones for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Waits up to 10 s for `path` to appear through a /mfs mount.
func waitUntilMounted(_ path: String) async throws {
    for _ in 0..<100 {
        if fileExists(path) { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw ConfigError("\(path) did not appear through the /mfs mount")
}
