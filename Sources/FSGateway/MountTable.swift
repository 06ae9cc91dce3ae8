import Glibc
import Shared
import Synchronization

/// The file systems mounted in the export that may keep a caller waiting for minutes: network
/// file systems (NFS, SMB, Ceph, 9P, AFS ...) and FUSE ones, whose server may hang or be gone.
/// The gateway gives calls reaching them threads of their own (`FileCallLanes`). Read from
/// /proc/self/mountinfo, and again whenever the kernel says the table changed (the file polls
/// readable with POLLPRI then), so a file system mounted a moment ago is known at once.
final class MountTable: Sendable {
    /// Types of file systems whose calls wait on a server or a daemon (FUSE ones are all "fuse"
    /// or "fuse.*").
    static let serverBackedTypes: Set<String> = [
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "9p", "afs", "coda", "ncpfs", "glusterfs", "lustre", "gfs2", "ocfs2",
        "orangefs", "beegfs", "gpfs", "davfs", "sshfs",
        // A trigger that mounts on first use, from a daemon and often over the network.
        "autofs",
    ]
    private let tree: ExportedTree
    /// /proc/self/mountinfo, open to be told of changes (-1 when it cannot be opened: then the
    /// table is read at every question).
    private let changes: Int32
    /// The mount points beneath the root (as the kernel names them) whose file systems may
    /// hang, whether each lies in an excluded tree (listings skip those), and whether the
    /// root's own file system may hang.
    private let state = Mutex<(mayHang: [(path: String, excluded: Bool)], rootMayHang: Bool)>(([], false))

    init(tree: ExportedTree) {
        self.tree = tree
        changes = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        state.withLock { $0 = readTable() }
    }

    deinit {
        if changes >= 0 { close(changes) }
    }

    /// Whether a file system of type `type` may keep its callers waiting on a server.
    static func mayHang(type: String) -> Bool {
        type == "fuse" || type.hasPrefix("fuse.") || type == "fuseblk" || serverBackedTypes.contains(type)
    }

    /// Whether the export root's own file system may hang (then every call is off the loop
    /// thread), as of the last reading: asked at every call, it costs no system call.
    var rootMayHang: Bool { state.withLock(\.rootMayHang) }

    /// The mount point of the first file system that may hang which a walk through `walked`
    /// (absolute paths, as the kernel names them, in the walk's order) enters; with `orHolds`,
    /// also one mounted on an entry of the last (a directory listing reads the attributes of
    /// its entries); nil when none.
    func mayHang(_ walked: [String], orHolds: Bool = false) -> String? {
        let table = current()
        for path in walked {
            let entered = table.mayHang.filter { path.isPath(atOrBeneath: $0.path) }.min { $0.path.utf8.count < $1.path.utf8.count }
            if let entered { return entered.path }
        }
        guard orHolds, let path = walked.last else { return nil }
        let prefix = path == "/" ? "/" : path + "/"
        return table.mayHang.first { mountPoint, excluded in
            !excluded && mountPoint.utf8.starts(with: prefix.utf8) && !mountPoint.utf8.dropFirst(prefix.utf8.count).contains(UInt8(ascii: "/"))
        }?.path
    }

    private func current() -> (mayHang: [(path: String, excluded: Bool)], rootMayHang: Bool) {
        state.withLock { state in
            // Seeing a change (POLLPRI) also takes note of it: the next poll reports only later ones.
            var changed = pollfd(fd: changes, events: Int16(POLLPRI), revents: 0)
            if changes < 0 || (poll(&changed, 1, 0) > 0 && changed.revents != 0) { state = readTable() }
            return state
        }
    }

    private func readTable() -> (mayHang: [(path: String, excluded: Bool)], rootMayHang: Bool) {
        let mounts = MountInfo.mountPoints()
        let root = tree.root
        // The root's file system is the one mounted deepest on the way to it.
        let rootType = mounts.filter { root.isPath(atOrBeneath: $0.path) }.max { $0.path.utf8.count < $1.path.utf8.count }?.type ?? ""
        // Excluded ones too (the /mfs mount): a path that leads into one (through a symlink, say)
        // is refused only once there.
        let beneath = root == "/" ? "/" : root + "/"
        let mayHang = mounts.filter { MountTable.mayHang(type: $0.type) && $0.path.utf8.starts(with: beneath.utf8) }.map { ($0.path, tree.isExcluded(path: $0.path)) }
        return (mayHang, MountTable.mayHang(type: rootType))
    }
}
