import Glibc
import Shared
import Synchronization

/// The files a gateway holds open for its callers, each under a handle with a lease.
///
/// A handle belongs to the caller that opened it: over TCP the node (and address) whose signed
/// call opened it, over the Unix socket the local user. Nobody else may use or release it (local
/// root excepted, who may open any file anyway). Handle ids start at a random point on every
/// start of the gateway, so a mount still holding the ids of a gateway that restarted reaches
/// no file through them.
final class OpenFiles: Sendable {
    /// An open file; its descriptor is closed when the last user lets go of it, so a read in
    /// flight keeps it open through a Release or an expired lease.
    final class File: Sendable {
        let fd: Int32
        let path: String
        let append: Bool
        let owner: Caller
        /// The lane it was opened in: `.loop` on local file systems, else where its calls go.
        let lane: FileCallLanes.Lane
        private let closeOffLoop: @Sendable (Int32, FileCallLanes.Lane) -> Void

        init(fd: Int32, path: String, append: Bool, owner: Caller, lane: FileCallLanes.Lane, closeOffLoop: @escaping @Sendable (Int32, FileCallLanes.Lane) -> Void) {
            self.fd = fd
            self.path = path
            self.append = append
            self.owner = owner
            self.lane = lane
            self.closeOffLoop = closeOffLoop
        }

        /// A close may wait on the file's server (FUSE flushes, NFS commits): a file on
        /// another file system than the root's is closed in its lane.
        deinit { closesLikeThis(fd) }

        /// Closes a descriptor of this file as this one closes: in its lane when that is not
        /// the loop thread's (a lock's description, `FileLocks`).
        var closesLikeThis: @Sendable (Int32) -> Void {
            let (lane, closeOffLoop) = (lane, closeOffLoop)
            return { fd in
                if lane == .loop { close(fd) } else { closeOffLoop(fd, lane) }
            }
        }

        /// Refuses, as the kernel does, an fcntl read lock through a file not open for reading
        /// and a write lock through one not open for writing (EBADF); flock takes any.
        func allows(_ type: FileLock.Kind, wholeFile: Bool) throws {
            guard !wholeFile, type != .unlock else { return }
            let access = fcntl(fd, F_GETFL) & O_ACCMODE
            guard type == .read ? access != O_WRONLY : access != O_RDONLY else {
                throw ExportedTree.Failure(EBADF, path, "lock: a \(type == .read ? "read" : "write") lock needs the file open for \(type == .read ? "reading" : "writing")")
            }
        }

        /// Whether `caller` may use this file: its opener (the same node and address over TCP,
        /// the same uid on the Unix socket), or local root.
        func admits(_ caller: Caller) -> Bool {
            switch (owner, caller) {
            case (_, .local(_, 0, _, _)): return true
            case let (.local(_, ownerUID, _, _), .local(_, uid, _, _)): return ownerUID == uid
            case let (.remote(ownerAddress, ownerNode), .remote(address, node)): return ownerAddress == address && ownerNode == node
            default: return false
            }
        }
    }

    /// How long a handle nobody uses stays open.
    let leaseNs: UInt64
    private let table: Mutex<(next: UInt64, open: [UInt64: (file: File, lastUsedNs: UInt64)])>
    private let closeOffLoop: @Sendable (Int32, FileCallLanes.Lane) -> Void

    /// - Parameter closeOffLoop: closes a descriptor in the lane given (off the loop thread).
    init(leaseNs: UInt64, closeOffLoop: @escaping @Sendable (Int32, FileCallLanes.Lane) -> Void) {
        self.leaseNs = leaseNs
        self.closeOffLoop = closeOffLoop
        table = Mutex((UInt64.random(in: 1...(UInt64.max >> 1)), [:]))
    }

    /// Takes `fd` (open on `path` for `owner`, in `lane`) under a new handle.
    func add(fd: Int32, path: String, append: Bool, owner: Caller, lane: FileCallLanes.Lane) -> UInt64 {
        let file = File(fd: fd, path: path, append: append, owner: owner, lane: lane, closeOffLoop: closeOffLoop)
        return table.withLock { state in
            let id = state.next
            state.next = state.next == .max ? 1 : state.next + 1
            state.open[id] = (file, monotonicNs())
            return id
        }
    }

    /// The file under handle `id`, for `caller`; renews its lease.
    /// - Throws: `ExportedTree.Failure` (EBADF) when no such handle is open for `caller`.
    func file(_ id: UInt64, for caller: Caller, _ method: String) throws -> File {
        try table.withLock { state in
            guard let entry = state.open[id], entry.file.admits(caller) else {
                throw ExportedTree.Failure(EBADF, "handle \(id)", "\(method): no such open file for \(caller) (closed, its lease ran out, or opened by another caller)")
            }
            state.open[id]!.lastUsedNs = monotonicNs()
            return entry.file
        }
    }

    /// Renews the leases of the handles among `ids` that `caller` may use.
    func renew(_ ids: [UInt64], by caller: Caller) {
        table.withLock { state in
            let now = monotonicNs()
            for id in ids where state.open[id]?.file.admits(caller) == true { state.open[id]!.lastUsedNs = now }
        }
    }

    /// The lane handle `id` was opened in, whoever holds it; nil when no such handle is open.
    func lane(of id: UInt64) -> FileCallLanes.Lane? {
        table.withLock { $0.open[id]?.file.lane }
    }

    /// The path of handle `id`, whoever holds it (for the change feed).
    func path(of id: UInt64) -> String? {
        table.withLock { $0.open[id]?.file.path }
    }

    /// Where handle `id`'s file is now, as the kernel names it (absolute; nil once unlinked).
    func currentPath(of id: UInt64) -> String? {
        guard let fd = table.withLock({ $0.open[id]?.file.fd }), let path = ExportedTree.kernelPath(of: fd) else { return nil }
        return path.hasSuffix(" (deleted)") ? nil : path
    }

    /// Drops the handles among `ids` that `caller` may use, and returns those; the others stay
    /// as they are.
    @discardableResult
    func release(_ ids: [UInt64], by caller: Caller) -> [UInt64] {
        let released = table.withLock { state in
            ids.compactMap { id -> (UInt64, File)? in
                guard let entry = state.open[id], entry.file.admits(caller) else { return nil }
                state.open[id] = nil
                return (id, entry.file)
            }
        }
        // The files close as `released` goes, outside the lock (or later, when a call in flight
        // lets go of one).
        return released.map(\.0)
    }

    /// Drops the handles unused for longer than the lease and returns them with their files.
    func expire() -> [(id: UInt64, file: File)] {
        table.withLock { state in
            // Read under the lock: no lease was renewed after this instant.
            let now = monotonicNs()
            let stale = state.open.filter { now - $0.value.lastUsedNs > leaseNs }
            for id in stale.keys { state.open[id] = nil }
            return stale.map { ($0.key, $0.value.file) }
        }
    }
}
