import CFileSystem
import Glibc
import Shared

/// The operations that change entries (or read a link), each on the entry `path` names,
/// never following a last-component symlink out of the tree.
extension ExportedTree {
    private func check(_ result: Int32, _ path: String, _ what: String = "") throws {
        if result != 0 { throw Failure(errno, path, what) }
    }

    func mkdir(_ path: String, mode: UInt32) throws -> FileAttr {
        try withParent(path) { fd, name in
            try check(mkdirat(fd, name, mode_t(mode)), path)
            return try attributes(of: name, in: fd, path)
        }
    }

    func rmdir(_ path: String) throws {
        try withParent(path) { fd, name in try check(unlinkat(fd, name, AT_REMOVEDIR), path) }
    }

    func unlink(_ path: String) throws {
        try withParent(path) { fd, name in try check(unlinkat(fd, name, 0), path) }
    }

    /// Renames `path` to `newPath` (`flags` as renameat2's).
    /// - Returns: the file's attributes when the two names were links to one file, which
    ///   rename(2) leaves both in place; nil when the source's name went (or was swapped).
    func rename(_ path: String, to newPath: String, flags: UInt32) throws -> FileAttr? {
        try withParent(path) { from, oldName in
            try withParent(newPath) { to, newName in
                try check(omx_renameat2(from, oldName, to, newName, flags), path, "rename to \(newPath)")
                guard flags & ExportedTree.renameExchange == 0, let source = try? attributes(of: oldName, in: from, path),
                    let target = try? attributes(of: newName, in: to, newPath), source.dev == target.dev, source.ino == target.ino
                else { return nil }
                return source
            }
        }
    }

    /// renameat2's RENAME_EXCHANGE (linux/fs.h): the two names swap their entries.
    static let renameExchange: UInt32 = 1 << 1

    /// A hard link `newPath` to the existing `path`.
    func link(_ path: String, as newPath: String) throws -> FileAttr {
        try withParent(path) { from, oldName in
            try withParent(newPath) { to, newName in
                try check(linkat(from, oldName, to, newName, 0), newPath, "link to \(path)")
                return try attributes(of: newName, in: to, newPath)
            }
        }
    }

    /// A fifo or socket `path` (`mode` holds its type): as on NFS, the client's kernel opens
    /// it as its own pipe or socket; device nodes are refused.
    func mknod(_ path: String, mode: UInt32) throws -> FileAttr {
        let type = mode_t(mode) & S_IFMT
        guard type == S_IFIFO || type == S_IFSOCK else {
            throw Failure(EPERM, path, "mknod: only fifos and sockets are made here (device nodes are not served)")
        }
        return try withParent(path) { fd, name in
            try check(mknodat(fd, name, mode_t(mode), 0), path)
            return try attributes(of: name, in: fd, path)
        }
    }

    /// A symbolic link `path` holding `target` (resolved, when used, beneath the root).
    func symlink(_ target: String, at path: String) throws -> FileAttr {
        try withParent(path) { fd, name in
            try check(symlinkat(WireFileName.cString(target), fd, name), path)
            return try attributes(of: name, in: fd, path)
        }
    }

    func readlink(_ path: String) throws -> String {
        try withParent(path) { fd, name in
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = buffer.withUnsafeMutableBytes { readlinkat(fd, name, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
            guard length >= 0 else { throw Failure(errno, path) }
            return WireFileName.decode(buffer[..<length])
        }
    }

    func chmod(_ path: String, mode: UInt32) throws {
        try withParent(path) { fd, name in
            // Of the entry itself, never of what a symlink swapped in meanwhile points at:
            // glibc pins the entry (O_PATH | O_NOFOLLOW) and changes the inode it pinned.
            if fchmodat(fd, name, mode_t(mode & 0o7777), AT_SYMLINK_NOFOLLOW) != 0 {
                // A symlink's mode means nothing, and the file it points at is not this entry.
                guard errno == EOPNOTSUPP else { throw Failure(errno, path, "chmod") }
            }
        }
    }

    /// chown of the entry itself (lchown); 0xffffffff leaves the uid or gid unchanged.
    /// Returns the entry's attributes after the change.
    func chown(_ path: String, uid: UInt32, gid: UInt32) throws -> FileAttr {
        try withParent(path) { fd, name in
            try check(fchownat(fd, name, uid, gid, AT_SYMLINK_NOFOLLOW), path, "chown")
            return try attributes(of: name, in: fd, path)
        }
    }

    /// utimensat of the entry itself; nanoseconds UTIME_NOW / UTIME_OMIT as the syscall takes.
    func utimens(_ path: String, atimeNs: Int64, mtimeNs: Int64) throws {
        var times = [ExportedTree.utimeSpec(atimeNs), ExportedTree.utimeSpec(mtimeNs)]
        try withParent(path) { fd, name in try check(utimensat(fd, name, &times, AT_SYMLINK_NOFOLLOW), path, "utimens") }
    }

    /// A time in nanoseconds as utimensat takes it (UTIME_NOW and UTIME_OMIT kept as they are).
    static func utimeSpec(_ ns: Int64) -> timespec {
        if ns == Int64(OMX_UTIME_NOW) || ns == Int64(OMX_UTIME_OMIT) { return timespec(tv_sec: 0, tv_nsec: Int(ns)) }
        return timespec(nanoseconds: ns)
    }

    func truncate(_ path: String, size: Int64) throws {
        let (fd, _) = try open(path, flags: O_WRONLY, mode: 0)
        defer { close(fd) }
        try check(ftruncate(fd, off_t(size)), path, "truncate")
    }

    /// access(2) with the caller's ids.
    func access(_ path: String, mode: Int32) throws {
        if path.isEmpty || path == "/" {
            try check(omx_faccessat2(rootFD, ".", mode, Int32(OMX_AT_EACCESS)), path)
            return
        }
        try withParent(path) { fd, name in try check(omx_faccessat2(fd, name, mode, Int32(OMX_AT_EACCESS) | AT_SYMLINK_NOFOLLOW), path) }
    }
}
