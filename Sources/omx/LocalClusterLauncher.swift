import Glibc
import Logging
import Shared

/// Starts and stops the service processes of a local cluster kept in one directory:
/// `cluster.key`, `cluster.map` (`1 127.0.0.1 N` by default), and for node K `node-K/run` (sockets and
/// pid files), `node-K/log`, `node-K/state` (the Migrator's registry) and `node-K/spool` (job output:
/// every node sees every spool at the same path, as CRIU needs).
struct LocalClusterLauncher {
    let dir: String
    /// A configuration file every service reads, when given.
    var configPath: String?

    var mapPath: String { "\(dir)/cluster.map" }
    var keyPath: String { "\(dir)/cluster.key" }
    func runDir(node: Int) -> String { "\(dir)/node-\(node)/run" }
    func logDir(node: Int) -> String { "\(dir)/node-\(node)/log" }
    func stateDir(node: Int) -> String { "\(dir)/node-\(node)/state" }
    func spoolDir(node: Int) -> String { "\(dir)/node-\(node)/spool" }
    func mfsDir(node: Int) -> String { "\(dir)/node-\(node)/mfs" }

    init(dir: String, configPath: String? = nil) throws {
        self.dir = absolutePath(dir)
        self.configPath = configPath.map(absolutePath)
    }

    /// The services of a node: name for files, executable, arguments.
    func services(node: Int, of nodes: Int, gateways: UInt32) -> [(name: String, executable: String, arguments: [String])] {
        let common = ["--map", mapPath, "--key", keyPath, "--node-id", "\(node)", "--run-dir", runDir(node: node)]
            + (configPath.map { ["--config", $0] } ?? [])
        var list: [(String, String, [String])] = [(ServiceKind.discovery.rawValue, ServiceKind.discovery.executableName, common)]
        // The nodes share this machine: each balances by its own jobs' load.
        list.append((ServiceKind.balancer.rawValue, ServiceKind.balancer.executableName, common + ["--load-source", "jobs"]))
        list.append((ServiceKind.migrator.rawValue, ServiceKind.migrator.executableName, common + ["--state-dir", stateDir(node: node), "--spool-dir", spoolDir(node: node)]))
        // Every node's /mfs view lives on this machine's disk: no gateway exports any of them.
        let excluded = (1...nodes).flatMap { ["--exclude", mfsDir(node: $0)] }
        // With oMFS turned off in the configuration there are no gateways and no mount.
        let gateways = OMXConfig.active.mfs.enabled ? gateways : 0
        for instance in 0..<gateways {
            list.append(("fsgateway-\(instance)", ServiceKind.fsgateway.executableName, ["serve", "--instance", "\(instance)"] + common + excluded))
        }
        if gateways > 0 { list.append(("mfs", ServiceKind.fsgateway.executableName, ["mount", mfsDir(node: node)] + common)) }
        return list
    }

    /// The nice value services run at (as root), as the systemd units set it.
    static let serviceNice = -5

    /// Writes the key and map if missing and starts every service that is not running.
    /// - Returns: how many processes were started.
    func up(nodes: Int, gateways: UInt32, firstAddress: String) throws -> Int {
        try makeDirectories(dir)
        if !fileExists(keyPath) { try ClusterKey.generate().write(to: keyPath, overwrite: false) }
        let wanted = "# a local OMX cluster of \(nodes) nodes on this machine\n1 \(firstAddress) \(nodes)\n"
        if (try? readTextFile(mapPath)) != wanted { try writeTextFile(mapPath, wanted) }
        var started = 0
        for node in 1...nodes {
            try makeDirectories(runDir(node: node))
            try makeDirectories(logDir(node: node))
            for service in services(node: node, of: nodes, gateways: gateways) {
                let pidFile = "\(runDir(node: node))/\(service.name).pid"
                if LocalClusterLauncher.runningPID(pidFile) != nil { continue }
                if service.name == "mfs" { LocalClusterLauncher.unmount(mfsDir(node: node)) }
                // Above the jobs, when we may: a node full of busy jobs still answers its peers
                // at once (jobs start at their caller's nice value, not the services').
                let command = geteuid() == 0
                    ? ["/usr/bin/nice", "-n", "\(LocalClusterLauncher.serviceNice)", siblingExecutable(service.executable)] + service.arguments
                    : [siblingExecutable(service.executable)] + service.arguments
                let process = try ChildProcess.spawn(
                    command[0], Array(command.dropFirst()), stdoutPath: "\(logDir(node: node))/\(service.name).log",
                    stderrPath: "\(logDir(node: node))/\(service.name).log", detached: true)
                try writeTextFile(pidFile, "\(process.pid)\n")
                started += 1
            }
        }
        return started
    }

    /// Stops every process whose pid file is under `dir` (SIGTERM, then SIGKILL after 5 s),
    /// then the jobs still running from its spools.
    /// - Returns: how many services were running.
    static func down(dir: String) -> Int {
        defer { killJobs(spooledUnder: dir) }
        var pids: [(pid_t, String)] = []
        var node = 1
        while fileExists("\(dir)/node-\(node)") {
            let run = "\(dir)/node-\(node)/run"
            for name in (try? listDirectory(run)) ?? [] where name.hasSuffix(".pid") {
                let pidFile = "\(run)/\(name)"
                if let pid = runningPID(pidFile) { pids.append((pid, pidFile)) }
                unlink(pidFile)
            }
            node += 1
        }
        for (pid, _) in pids { kill(pid, SIGTERM) }
        let deadline = monotonicNs() + 5_000_000_000
        while monotonicNs() < deadline && pids.contains(where: { kill($0.0, 0) == 0 }) { usleep(50_000) }
        for (pid, _) in pids where kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        // Every FUSE mount left in the directory (each node's /mfs, whatever its pid files
        // say): through one, removing the directory would remove every node's files.
        for mountPoint in MountInfo.mountPoints(atOrBeneath: canonicalPath(dir)).reversed() { unmount(mountPoint) }
        return pids.count
    }

    /// Detaches a FUSE mount left behind by a killed mount process (nothing when none is there).
    static func unmount(_ path: String) {
        let path = canonicalPath(path)
        guard MountInfo.mountPoints().contains(where: { $0.path == path && $0.type.hasPrefix("fuse") }) else { return }
        if let process = try? ChildProcess.spawn("/usr/bin/fusermount3", ["-u", "-z", path], stdoutPath: "/dev/null", stderrPath: "/dev/null") {
            process.wait()
        }
    }

    /// Kills every job whose namespace init (omx-jobinit, its command line kept across
    /// migrations) writes to a spool under `dir`.
    static func killJobs(spooledUnder dir: String) {
        for name in (try? listDirectory("/proc")) ?? [] {
            guard let pid = pid_t(name), jobInitSpool(of: pid)?.hasPrefix(dir + "/") == true else { continue }
            kill(pid, SIGKILL)
        }
    }

    /// The pid in `pidFile` when that process still runs.
    static func runningPID(_ pidFile: String) -> pid_t? {
        guard let text = try? readTextFile(pidFile), let pid = pid_t(text.trimmedWhitespace), pid > 0, kill(pid, 0) == 0 else { return nil }
        // A zombie or a recycled pid is not our service.
        guard let status = try? readTextFile("/proc/\(pid)/status"), !status.contains("State:\tZ") else { return nil }
        return pid
    }
}

/// The working directory.
func currentDirectory() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    return getcwd(&buffer, buffer.count) != nil ? String(cString: buffer) : "."
}

/// `path` made absolute against the current directory.
private func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : "\(currentDirectory())/\(path)"
}
