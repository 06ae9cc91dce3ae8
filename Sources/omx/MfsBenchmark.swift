import FoundationEssentials
import Glibc
import Shared

/// `omx bench mfs`: fio through `/mfs/<other node>/` against the local disk and against sshfs
/// over loopback, in the same run; plus a metadata run (create, stat, unlink 10,000 files).
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

    func run(progress: (String) -> Void) async throws -> [Row] {
        for tool in ["/usr/bin/fio", "/usr/bin/sshfs", "/usr/sbin/sshd", "/usr/bin/ssh-keygen"] where access(tool, X_OK) != 0 {
            throw ConfigError("\(tool) is missing: omx bench mfs needs fio, sshfs and openssh-server (apt-get install fio sshfs openssh-server)")
        }
        let launcher = try LocalClusterLauncher(dir: dir)
        _ = try launcher.up(nodes: 2, gateways: 1, firstAddress: firstAddress)
        try await launcher.waitUntilAlive(nodes: 2, timeoutSeconds: 20)
        let data = "\(launcher.dir)/data"
        let targets = ["local": "\(data)/local", "mfs": "\(launcher.mfsDir(node: 1))/2\(data)/mfs", "sshfs": "\(launcher.dir)/sshfs-mount"]
        for path in ["\(data)/local", "\(data)/mfs", "\(data)/ssh", "\(launcher.dir)/sshfs-mount"] { try makeDirectories(path) }
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
        for test in tests {
            var values: [String: Double] = [:]
            for name in ["local", "mfs", "sshfs"] {
                let job = try await fio(test.arguments, in: targets[name]!)
                values[name] = job[keyPath: test.field]
                progress("\(test.name) on \(name): \(String(format: values[name]!, decimals: 1)) \(test.unit)")
            }
            rows.append(Row(test: test.name, unit: test.unit, local: values["local"]!, mfs: values["mfs"]!, sshfs: values["sshfs"]!))
        }
        var rates: [String: Double] = [:]
        for name in ["local", "mfs", "sshfs"] {
            rates[name] = try metadata(in: "\(targets[name]!)/meta")
            progress("metadata (create, stat, unlink \(files) files) on \(name): \(String(format: rates[name]!, decimals: 0)) files/s")
        }
        rows.append(Row(test: "metadata: create, stat, unlink \(files) files", unit: "files/s", local: rates["local"]!, mfs: rates["mfs"]!, sshfs: rates["sshfs"]!))
        return rows
    }

    private func waitUntilMounted(_ path: String) async throws {
        for _ in 0..<100 {
            if fileExists(path) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ConfigError("\(path) did not appear through the /mfs mount")
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
        let sshd = try ChildProcess.spawn("/usr/sbin/sshd", ["-D", "-e", "-f", "\(keys)/sshd_config"], stdoutPath: "\(keys)/sshd.log", stderrPath: "\(keys)/sshd.log")
        usleep(300_000)
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
        let process = try ChildProcess.spawn("/usr/bin/fio", ["--name=omx", "--directory=\(directory)", "--ioengine=psync", "--output-format=json", "--output=\(output)"] + arguments, stdoutPath: "/dev/null", stderrPath: "\(dir)/fio.err")
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
