import Glibc

/// How a node's /mfs mount tells its Migrator which processes hold file locks through the
/// gateways, in `<run dir>/mfs-locks`: a marker per process that took such a lock,
/// `<pid>.<start ticks>`, and one per locked file, `file.<inode>` (the inode number the mount
/// gives it: hashed, with bit 62 set, so no other file system's numbers meet it in practice),
/// each naming what was locked. Such a process cannot move, nor one with a locked file open:
/// flock and OFD locks belong to the open file, which fork and dup share. The locks stay with
/// the mount of the node and would not follow.
public enum MfsLockMarkers {
    /// The markers' directory in a node's run directory.
    public static func directory(runDir: String) -> String { "\(runDir)/mfs-locks" }

    /// How the names of files' markers begin.
    private static let filePrefix = "file."

    /// The name of the marker of the file the mount numbers `inode`.
    public static func fileMarker(inode: UInt64) -> String { filePrefix + String(inode) }

    /// What process `pid` holds locks on through /mfs ("node 2: data/db"), or nil when none.
    public static func locked(by pid: pid_t, runDir: String) -> String? {
        (try? readTextFile("\(directory(runDir: runDir))/\(ProcStat.key(of: pid))"))?.trimmedWhitespace
    }

    /// What each file locked through the mount now is, by the inode number the mount gives it.
    public static func lockedFiles(runDir: String) -> [UInt64: String] {
        let directory = directory(runDir: runDir)
        var files: [UInt64: String] = [:]
        for name in (try? listDirectory(directory)) ?? [] where name.hasPrefix(filePrefix) {
            guard let inode = UInt64(name.dropFirst(filePrefix.count)), let what = try? readTextFile("\(directory)/\(name)") else { continue }
            files[inode] = what.trimmedWhitespace
        }
        return files
    }
}
