import Glibc

/// How a node's /mfs mount tells its Migrator which processes hold file locks through the
/// gateways: a marker per such process, `<run dir>/mfs-locks/<pid>.<start ticks>`, naming what
/// it locked. Such a process cannot move: its locks stay with the mount of its node.
public enum MfsLockMarkers {
    /// The markers' directory in a node's run directory.
    public static func directory(runDir: String) -> String { "\(runDir)/mfs-locks" }

    /// What process `pid` holds locks on through /mfs ("node 2: data/db"), or nil when none.
    public static func locked(by pid: pid_t, runDir: String) -> String? {
        (try? readTextFile("\(directory(runDir: runDir))/\(ProcStat.key(of: pid))"))?.trimmedWhitespace
    }
}
