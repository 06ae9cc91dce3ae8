import CFuse
import Glibc
import Shared
import Synchronization

/// Who calls the mount: the calling process's credentials, job and node choices, for the
/// gateways and for the magic entries.
extension MfsMount {
    /// The caller's credentials, for the gateway; with `job`, also the caller's job (for the
    /// gateways' I/O counters: found once per open file, it costs a walk up the process tree).
    func request(_ path: String, job: Bool = false) -> FsRequest {
        var request = FsRequest(path: path)
        if let context = fuse_get_context()?.pointee {
            request.callerUID = context.uid
            request.callerGID = context.gid
            request.callerGroups = callerGroups(pid: context.pid, uid: context.uid, gid: context.gid)
            if job { request.job = MfsMount.job(of: context.pid) ?? "" }
        }
        request.callerNode = nodeID
        request.client = client
        return request
    }

    /// The supplementary groups of the calling process. The kernel tells them only through
    /// /proc/PID/task/TID/status, which costs more than many a call, so they are kept for a
    /// second per process and ids (a process rarely changes its groups, and never another's).
    private func callerGroups(pid: pid_t, uid: uid_t, gid: gid_t) -> [UInt32] {
        let now = monotonicNs()
        if let known = groupsCache.withLock({ $0[pid] }), known.uid == uid, known.gid == gid, known.atNs + 1_000_000_000 > now {
            return known.groups
        }
        var buffer = [gid_t](repeating: 0, count: 64)
        let count = omx_fuse_caller_groups(Int32(buffer.count), &buffer)
        let groups = count > 0 ? Array(buffer.prefix(Int(min(count, 64)))) : []
        groupsCache.withLock { table in
            if table.count > 4_096 { table.removeAll() }
            table[pid] = (uid, gid, groups, now)
        }
        return groups
    }

    /// `ProcStat.key(of: pid)` ("pid.start ticks"), read from /proc at most once a second per
    /// pid: a caller's every create and open needs it, and the read costs more than the rest.
    static func processKey(of pid: pid_t) -> String {
        let now = monotonicNs()
        if let known = processKeys.withLock({ $0[pid] }), known.atNs + 1_000_000_000 > now { return known.key }
        let key = ProcStat.key(of: pid)
        processKeys.withLock { table in
            if table.count > 4_096 { table.removeAll() }
            table[pid] = (key, now)
        }
        return key
    }

    /// Each recent caller's key, by pid, with when it was read.
    private static let processKeys = Mutex<[pid_t: (key: String, atNs: UInt64)]>([:])

    /// The job whose namespace `pid` runs in: the spool name of the nearest omx-jobinit
    /// ancestor ("2.17"), or nil.
    static func job(of pid: pid_t) -> String? {
        // A process never leaves its PID namespace: its answer holds for its whole life.
        let key = processKey(of: pid)
        if let known = knownJobs.withLock({ $0[key] }) { return known.isEmpty ? nil : known }
        let job = enclosingJob(of: pid)?.job ?? ""
        knownJobs.withLock { table in
            if table.count > 10_000 { table.removeAll() }
            table[key] = job
        }
        return job.isEmpty ? nil : job
    }

    /// Each process's job ("" for none), by pid and start ticks.
    private static let knownJobs = Mutex<[String: String]>([:])

    /// What a magic entry points at for the calling process: `here` its node, `home` its
    /// job's home, `magic` the node of its last successful create, `lastexec` where it last
    /// exec'd, `selected` the node it or an ancestor chose with `omx select` (each falls back
    /// to this node).
    func magicTarget(_ name: String) -> String {
        let pid = fuse_get_context()?.pointee.pid ?? 0
        switch name {
        case "home":
            if let job = MfsMount.job(of: pid), let home = job.split(separator: ".").first { return String(home) }
        case "magic":
            if let node = lastCreate.withLock({ $0[MfsMount.processKey(of: pid)] }) { return String(node) }
        case "lastexec":
            if let job = MfsMount.job(of: pid), let node = lastExec(of: pid, job: job) { return String(node) }
        case "selected":
            for ancestor in ProcStat.lineage(of: pid) {
                let path = "\(selections)/\(ProcStat.key(of: ancestor))"
                var info = stat()
                // Only the process's own user (or root) may have chosen for it.
                guard stat(path, &info) == 0, info.st_uid == 0 || info.st_uid == MfsMount.owner(of: ancestor) else { continue }
                if let text = try? readTextFile(path), let node = UInt32(text.trimmedWhitespace) { return String(node) }
            }
        default:
            break
        }
        return String(nodeID)
    }

    /// Where process `pid` of `job` last exec'd, as the job's Migrator noted it (a process
    /// outside jobs exec'd here). Nil, logged, when the Migrator cannot be asked.
    private func lastExec(of pid: pid_t, job: String) -> UInt32? {
        // The caller and its ancestors up to the job's init, by their pids inside the job.
        var pids: [Int32] = []
        for process in ProcStat.lineage(of: pid) {
            guard let inside = namespacePID(of: process) else { break }
            pids.append(inside)
            if inside == 1 { break }
        }
        do {
            let body = try migrator.callBlocking("Migrator.LastExec", LastExecRequest(job: job, pids: pids).wire(), timeout: .seconds(2))
            return try LastExecResponse(wire: body).node
        } catch {
            logger.warning("lastexec of pid \(pid) in job \(job): Migrator.LastExec: \(error)")
            return nil
        }
    }

    /// Remembers that the calling process created a file on `node` (for `magic`).
    func createdOn(_ node: UInt32) {
        guard let pid = fuse_get_context()?.pointee.pid else { return }
        lastCreate.withLock { table in
            if table.count > 10_000 { table.removeAll() }
            table[MfsMount.processKey(of: pid)] = node
        }
    }

    /// The real uid of process `pid`.
    static func owner(of pid: pid_t) -> uid_t? {
        guard let status = try? readTextFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
            return line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { uid_t($0) }
        }
        return nil
    }
}
