import Glibc

/// How a node's /mfs mount tells its Migrator which processes hold file locks through the
/// gateways, in `<run dir>/mfs-locks`: a marker per process that took such a lock,
/// `<pid>.<start ticks>`, and one per locked file, `file.<inode>` (the inode number the mount
/// gives it), each naming what was locked; `mount` names the mount point. Such a process cannot
/// move, nor one with a locked file open: flock and OFD locks belong to the open file, which
/// fork and dup share. The locks stay with the mount of the node and would not follow.
public enum MfsLockMarkers {
    /// The markers' directory in a node's run directory.
    public static func directory(runDir: String) -> String { "\(runDir)/mfs-locks" }

    /// The name of the marker of the file the mount numbers `inode`.
    public static func fileMarker(inode: UInt64) -> String { "file.\(inode)" }

    /// The name of the file naming the mount point.
    public static let mountPointName = "mount"

    /// What process `pid` holds locks on through /mfs ("node 2: data/db"), or nil when none.
    public static func locked(by pid: pid_t, runDir: String) -> String? {
        (try? readTextFile("\(directory(runDir: runDir))/\(ProcStat.key(of: pid))"))?.trimmedWhitespace
    }

    /// The files locked through the mount now, by the inode numbers the mount gives them, and
    /// where the mount is; nil when nothing is locked.
    public static func lockedFiles(runDir: String) -> (mountPoint: String, files: [UInt64: String])? {
        let directory = directory(runDir: runDir)
        let names = ((try? listDirectory(directory)) ?? []).filter { $0.hasPrefix("file.") }
        guard !names.isEmpty, let mountPoint = (try? readTextFile("\(directory)/\(mountPointName)"))?.trimmedWhitespace else { return nil }
        var files: [UInt64: String] = [:]
        for name in names {
            guard let inode = UInt64(name.dropFirst("file.".count)), let what = try? readTextFile("\(directory)/\(name)") else { continue }
            files[inode] = what.trimmedWhitespace
        }
        return files.isEmpty ? nil : (mountPoint, files)
    }
}
