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

    /// An open file description holding one key's locks; it closes when the last user lets go,
    /// as its file's handle would (off the loop thread where a close may wait).
    final class Description: Sendable {
        let fd: Int32
        /// Held while a call changes its locks and decides whether it stays in the table.
        let changing = Mutex<Void>(())
        private let closes: @Sendable (Int32) -> Void
        init(fd: Int32, closes: @escaping @Sendable (Int32) -> Void) {
            self.fd = fd
            self.closes = closes
        }
        deinit { closes(fd) }

        /// Whether any lock is held on this description (`lock:` lines of /proc/self/fdinfo);
        /// true when that cannot be read (its locks are kept rather than dropped).
        var holdsLocks: Bool {
            guard let bytes = try? readFileBytes("/proc/self/fdinfo/\(fd)") else { return true }
            let marker = Array("lock:".utf8)
            return bytes.indices.contains { start in
                (start == 0 || bytes[start - 1] == UInt8(ascii: "\n")) && bytes[start...].starts(with: marker)
            }
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
        guard let type = lock.type else { throw ExportedTree.Failure(EINVAL, file.path, "lock: lock type \(lock.typeNumber) is unknown to this gateway") }
        try file.allows(type, wholeFile: lock.wholeFile)
        // Checked before any description is opened for it.
        let range = lock.wholeFile ? nil : try flockStruct(type, lock, file.path)
        let key = try key(lock, file, client: client)
        while true {
            let description: Description
            if type == .unlock {
                guard let known = table.withLock({ $0[key]?.description }) else { return false }
                description = known
            } else {
                description = try table.withLock({ $0[key]?.description }) ?? reopen(file)
                table.withLock { table in
                    let entry = table[key] ?? (description, [])
                    table[key] = (entry.description, entry.handles.union([id]))
                }
            }
            // One call at a time changes a description's locks and decides whether it stays:
            // one found dropped meanwhile (it held nothing) is not used, the call starts over.
            let outcome: Result<Bool, Error>? = description.changing.withLock { _ in
                guard table.withLock({ $0[key]?.description === description }) else { return nil }
                do {
                    try apply(type, range, to: description.fd, file.path)
                } catch {
                    _ = keepIfHolding(key, description)
                    return .failure(error)
                }
                return .success(keepIfHolding(key, description))
            }
            if let outcome { return try outcome.get() }
        }
    }

    /// The first lock another holds that conflicts with `lock` (`.unlock`: none); fcntl locks only.
    func test(_ lock: FileLock, on file: OpenFiles.File, client: UInt64) throws -> FileLock {
        guard let type = lock.type, type != .unlock, !lock.wholeFile else {
            throw ExportedTree.Failure(EINVAL, file.path, "getlk: only a READ or WRITE fcntl lock can be tested")
        }
        var query = try flockStruct(type, lock, file.path)
        let key = try key(lock, file, client: client)
        // The owner's own locks never conflict with it: tested on its description when it has one.
        let description = try table.withLock({ $0[key]?.description }) ?? reopen(file)
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

    /// A new open file description of the handle's file for its locks, for reading and writing
    /// so that one owner may lock through handles of either access (`OpenFiles.File.allows`
    /// checks the asking handle's); with the handle's own access where the file cannot be
    /// written (a read-only file system). The handle proves the caller may open the file: the
    /// gateway's own rights open it again.
    private func reopen(_ file: OpenFiles.File) throws -> Description {
        var fd = open("/proc/self/fd/\(file.fd)", O_RDWR | O_CLOEXEC | O_NOCTTY)
        if fd < 0 { fd = open("/proc/self/fd/\(file.fd)", (fcntl(file.fd, F_GETFL) & O_ACCMODE) | O_CLOEXEC | O_NOCTTY) }
        guard fd >= 0 else { throw ExportedTree.Failure(errno, file.path, "lock: opening the file again for its locks") }
        return Description(fd: fd, closes: file.closesLikeThis)
    }

    /// Applies an fcntl lock on `range`, or (nil) a flock lock of `type`.
    private func apply(_ type: FileLock.Kind, _ range: flock?, to fd: Int32, _ path: String) throws {
        guard var request = range else {
            let operation = type == .unlock ? LOCK_UN : (type == .read ? LOCK_SH : LOCK_EX) | LOCK_NB
            guard flock(fd, operation) == 0 else { throw ExportedTree.Failure(errno == EWOULDBLOCK ? EAGAIN : errno, path, "flock") }
            return
        }
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
