import CFuse
import Glibc
import Shared
import Synchronization

/// File locks on /mfs: fcntl's (F_GETLK, F_SETLK, F_SETLKW) and flock's, held by the gateway
/// of the file's node, so they conflict with those taken through every other mount and by the
/// node's own processes. A lock that must wait is asked again until it is free (from every
/// millisecond up to every 100 ms) or the caller is interrupted by a signal (EINTR).
extension MfsOperations {
    /// The longest pause between two tries of a lock that must wait.
    static let lockRetryMaxUs: UInt32 = 100_000
    /// How many callers may wait for locks at once: each keeps one of the mount's 256 threads,
    /// and the calls that would end their waits (a close, a signal's interrupt) need others.
    static let maxLockWaiters = 128
    /// How many wait now.
    private static let lockWaiters = Atomic<Int>(0)

    /// fcntl's locks of the open file `info`.
    static func lock(_ info: UnsafeMutablePointer<fuse_file_info>, _ command: Int32, _ lock: UnsafeMutablePointer<flock>) -> Int32 {
        let type: FileLock.Kind
        switch Int32(lock.pointee.l_type) {
        case F_UNLCK: type = .unlock
        case F_RDLCK: type = .read
        case F_WRLCK: type = .write
        default: return -EINVAL
        }
        // libfuse hands every lock over from its first byte (l_whence SEEK_SET), 0 bytes
        // meaning to the end of the file.
        let asked = FileLock(type: type, start: Int64(lock.pointee.l_start), length: Int64(lock.pointee.l_len), owner: info.pointee.lock_owner)
        switch command {
        case F_GETLK:
            let (code, answer) = mount.callFile(info.pointee.fh, "Getlk") { $0.lock = asked }
            guard code == 0 else { return code == -ENOSYS ? -ENOLCK : code }
            guard let found = answer.lock, let kind = found.type, kind != .unlock else {
                lock.pointee.l_type = Int16(F_UNLCK)
                return 0
            }
            lock.pointee.l_type = Int16(kind == .read ? F_RDLCK : F_WRLCK)
            lock.pointee.l_whence = Int16(SEEK_SET)
            lock.pointee.l_start = off_t(found.start)
            lock.pointee.l_len = off_t(found.length)
            // A pid means something on the file's own node only.
            lock.pointee.l_pid = mount.file(info.pointee.fh)?.node == mount.nodeID ? found.pid : 0
            return 0
        case F_SETLK, F_SETLKW:
            return setLock(info, asked, wait: command == F_SETLKW)
        default:
            return -EINVAL
        }
    }

    /// flock's lock of the open file `info` (`operation`: LOCK_SH, LOCK_EX or LOCK_UN, with
    /// LOCK_NB not to wait).
    static func flock(_ info: UnsafeMutablePointer<fuse_file_info>, _ operation: Int32) -> Int32 {
        let type: FileLock.Kind
        switch operation & ~LOCK_NB {
        case LOCK_UN: type = .unlock
        case LOCK_SH: type = .read
        case LOCK_EX: type = .write
        default: return -EINVAL
        }
        return setLock(info, FileLock(type: type, owner: info.pointee.lock_owner, wholeFile: true), wait: operation & LOCK_NB == 0)
    }

    /// Takes, changes or drops `lock` at the file's gateway, trying again while it is held
    /// elsewhere when the caller `wait`s.
    private static func setLock(_ info: UnsafeMutablePointer<fuse_file_info>, _ lock: FileLock, wait: Bool) -> Int32 {
        let id = info.pointee.fh
        guard let open = mount.file(id) else { return -EBADF }
        // As the kernel: an fcntl read lock needs the file open for reading, a write lock for
        // writing (a gateway's EBADF then means a lost handle, as for every call).
        let access = open.flags & O_ACCMODE
        if !lock.wholeFile && (lock.type == .read && access == O_WRONLY || lock.type == .write && access == O_RDONLY) { return -EBADF }
        let key = MountLocks.Key(owner: lock.owner, wholeFile: lock.wholeFile, node: open.node, file: MountLocks.fileKey(open))
        let heldBefore = mount.locks.holds(key)
        if lock.type == .unlock {
            // Every close of a file unlocks: only owners that hold locks on it ask the gateway.
            guard heldBefore else { return 0 }
            // What was written under the lock is on the node before another may take it.
            drainWrites(of: id)
        }
        var pauseUs: UInt32 = 1_000
        var waiting = false
        defer { if waiting { lockWaiters.subtract(1, ordering: .relaxed) } }
        let caller = fuse_get_context()?.pointee.pid ?? 0
        while true {
            // One call of a key at a time, its answer recorded before the next: the mount's word
            // on what the owner holds follows the gateway's order.
            let code = mount.locks.serialized(key) {
                let (code, answer) = mount.callFile(id, "Lock") { $0.lock = lock }
                if code == 0 || lock.type == .unlock {
                    // An unlock that failed leaves nothing held that the mount could drop later.
                    mount.locks.update(key, held: code == 0 && answer.locksHeld, through: id, by: { threadGroup(of: caller) ?? 0 }, on: "node \(open.node): \(open.path)",
                        inode: open.identity.map { MountInode.of(node: open.node, dev: $0.dev, ino: $0.ino) })
                }
                return code
            }
            if code == 0 || lock.type == .unlock {
                // An owner that held locks on the file all along saw nothing change under them.
                if code == 0 && lock.type != .unlock && !heldBefore { forgetCached(open.node, open.path) }
                return code == -ENOSYS ? -ENOLCK : code
            }
            guard code == -EAGAIN, wait else { return code == -ENOSYS ? -ENOLCK : code }
            if !waiting {
                guard lockWaiters.add(1, ordering: .relaxed).newValue <= maxLockWaiters else {
                    lockWaiters.subtract(1, ordering: .relaxed)
                    mount.logger.warning("lock of \(open.path) on node \(open.node): \(maxLockWaiters) callers wait for locks already; this one is refused (ENOLCK)")
                    return -ENOLCK
                }
                waiting = true
            }
            if fuse_interrupted() != 0 { return -EINTR }
            usleep(pauseUs)
            if fuse_interrupted() != 0 { return -EINTR }
            pauseUs = min(pauseUs * 2, lockRetryMaxUs)
        }
    }

    /// What another node did before a lock was free is read from there once it is taken, as
    /// NFS does: the file's data and attributes, and the names beside it (a lock often guards
    /// a set of files, such as a database and its journal), which the mount's cache and the
    /// kernel's may still hold as they were.
    private static func forgetCached(_ node: UInt32, _ path: String) {
        let directory = path.split(separator: "/").dropLast().joined(separator: "/")
        mount.cache.changed(node, directory)
        mount.cache.written(node, path)
        omx_fuse_invalidate_path(WireFileName.cString("/\(node)/\(path)"))
        mount.changedThrough(node, path)
        expireNames()
    }
}
