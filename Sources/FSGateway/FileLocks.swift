import CFileSystem
import Glibc
import Shared
import Synchronization

/// The file locks a gateway holds for its callers (`FSGateway.Lock`, `FSGateway.Getlk`).
///
/// Each lock owner of a mount keeps its locks on a file in an open file description of its own,
/// opened anew from the handle it asked through: there Linux holds them as OFD locks (fcntl) or
/// flock locks, which conflict with those of every other owner, mount and process of the node
/// as two processes' locks would, merge and split by range as one process's do, and go when the
/// description closes. A description closes once its owner holds nothing on it, or when the
/// last handle it was asked through goes (Release, or an expired lease: a mount that died lets
/// go of its locks with its leases).
final class FileLocks: Sendable {
    /// Whose locks on which file: the handle's holder (a node, or a local user), the mount it
    /// speaks for, the mount's lock owner, the kind (flock or fcntl), and the file.
    struct Key: Hashable {
        let holder: String
        let client: UInt64
        let owner: UInt64
        let wholeFile: Bool
        let dev: UInt64
        let ino: UInt64
    }

    /// An open file description holding one key's locks; it closes when the last user lets go.
    final class Description: Sendable {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }

        /// Whether any lock is held on this description (`lock:` lines of /proc/self/fdinfo).
        var holdsLocks: Bool {
            guard let text = try? readTextFile("/proc/self/fdinfo/\(fd)") else { return false }
            return text.split(separator: "\n").contains { $0.hasPrefix("lock:") }
        }
    }

    private let table = Mutex<[Key: (description: Description, handles: Set<UInt64>)]>([:])

    /// How many descriptions hold locks now.
    var count: Int { table.withLock { $0.count } }

    /// Takes, changes or drops `lock` (without waiting) for its owner on `file`, asked through
    /// handle `id` by mount `client`. Returns whether the owner still holds a lock on the file.
    /// - Throws: `ExportedTree.Failure`: EAGAIN while another holds a conflicting lock, EBADF
    ///   when the handle's access does not allow the lock (READ needs reading, WRITE writing),
    ///   EINVAL for a lock type or range the gateway does not take.
    func set(_ lock: FileLock, on file: OpenFiles.File, handle id: UInt64, client: UInt64) throws -> Bool {
        guard let type = lock.type else { throw ExportedTree.Failure(EINVAL, file.path, "lock: a lock type this gateway does not know") }
        let key = try key(lock, file, client: client)
        if type == .unlock {
            guard let entry = table.withLock({ $0[key] }) else { return false }
            try apply(type, lock, to: entry.description.fd, file.path)
            return keepIfHolding(key, entry.description)
        }
        let description = try table.withLock({ $0[key]?.description }) ?? reopen(file)
        let inTable = table.withLock { table in
            let entry = table[key] ?? (description, [])
            table[key] = (entry.description, entry.handles.union([id]))
            return entry.description
        }
        do {
            try apply(type, lock, to: inTable.fd, file.path)
        } catch {
            _ = keepIfHolding(key, inTable)
            throw error
        }
        return true
    }

    /// The first lock another holds that conflicts with `lock` (`.unlock`: none); fcntl locks only.
    func test(_ lock: FileLock, on file: OpenFiles.File, client: UInt64) throws -> FileLock {
        guard let type = lock.type, type != .unlock, !lock.wholeFile else {
            throw ExportedTree.Failure(EINVAL, file.path, "getlk: only a READ or WRITE fcntl lock can be tested")
        }
        let key = try key(lock, file, client: client)
        // The owner's own locks never conflict with it: tested on its description when it has one.
        let description = try table.withLock({ $0[key]?.description }) ?? reopen(file)
        var query = try flockStruct(type, lock, file.path)
        guard fcntl(description.fd, Int32(OMX_F_OFD_GETLK), &query) == 0 else { throw ExportedTree.Failure(errno, file.path, "getlk") }
        guard Int32(query.l_type) != F_UNLCK else { return FileLock(type: .unlock, owner: lock.owner) }
        // An OFD lock (through a gateway, or a local process's) has no process: pid -1.
        return FileLock(
            type: Int32(query.l_type) == F_RDLCK ? .read : .write, start: Int64(query.l_start), length: Int64(query.l_len), owner: 0,
            pid: max(query.l_pid, 0))
    }

    /// Forgets handles `ids` (released, or their lease ran out): a description asked for
    /// through none of the handles still open closes, dropping its locks.
    func forget(_ ids: [UInt64]) {
        guard !ids.isEmpty else { return }
        let closing = table.withLock { table in
            var closing: [Description] = []
            for (key, entry) in table where !entry.handles.isDisjoint(with: ids) {
                let left = entry.handles.subtracting(ids)
                if left.isEmpty {
                    closing.append(entry.description)
                    table[key] = nil
                } else {
                    table[key] = (entry.description, left)
                }
            }
            return closing
        }
        // They close as `closing` goes, outside the lock (or later, when a call lets go of one).
        _ = closing
    }

    private func key(_ lock: FileLock, _ file: OpenFiles.File, client: UInt64) throws -> Key {
        var info = stat()
        guard fstat(file.fd, &info) == 0 else { throw ExportedTree.Failure(errno, file.path, "lock") }
        return Key(holder: file.owner.description, client: client, owner: lock.owner, wholeFile: lock.wholeFile, dev: UInt64(info.st_dev), ino: UInt64(info.st_ino))
    }

    /// Drops `key`'s entry when its description holds no lock any more; whether it still holds.
    private func keepIfHolding(_ key: Key, _ description: Description) -> Bool {
        if description.holdsLocks { return true }
        table.withLock { table in
            if table[key]?.description === description { table[key] = nil }
        }
        return false
    }

    /// A new open file description of the handle's file, with the handle's access mode. The
    /// handle proves the caller may open the file so: the gateway's own rights open it again
    /// (the file's mode may have changed since, as it may for an open descriptor).
    private func reopen(_ file: OpenFiles.File) throws -> Description {
        let access = fcntl(file.fd, F_GETFL) & O_ACCMODE
        let fd = open("/proc/self/fd/\(file.fd)", access | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw ExportedTree.Failure(errno, file.path, "lock: opening the file again for its locks") }
        return Description(fd: fd)
    }

    private func apply(_ type: FileLock.Kind, _ lock: FileLock, to fd: Int32, _ path: String) throws {
        if lock.wholeFile {
            let operation = type == .unlock ? LOCK_UN : (type == .read ? LOCK_SH : LOCK_EX) | LOCK_NB
            guard flock(fd, operation) == 0 else { throw ExportedTree.Failure(errno == EWOULDBLOCK ? EAGAIN : errno, path, "flock") }
            return
        }
        var request = try flockStruct(type, lock, path)
        guard fcntl(fd, Int32(OMX_F_OFD_SETLK), &request) == 0 else { throw ExportedTree.Failure(errno, path, "lock") }
    }

    private func flockStruct(_ type: FileLock.Kind, _ lock: FileLock, _ path: String) throws -> flock {
        guard lock.start >= 0, lock.length >= 0, lock.length <= Int64.max - lock.start else {
            throw ExportedTree.Failure(EINVAL, path, "lock: bytes \(lock.start) + \(lock.length) are no range of a file")
        }
        var request = flock()
        request.l_type = Int16(type == .unlock ? F_UNLCK : (type == .read ? F_RDLCK : F_WRLCK))
        request.l_whence = Int16(SEEK_SET)
        request.l_start = off_t(lock.start)
        request.l_len = off_t(lock.length)
        return request
    }
}
