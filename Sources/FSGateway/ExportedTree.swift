import CFileSystem
import Glibc
import Shared

/// A node's exported tree, with every path resolved beneath its root: the directory part
/// through openat2(RESOLVE_IN_ROOT), which keeps "..", absolute symlinks and races inside the
/// root, and the last component acted on without following it (FUSE names the entry itself).
/// /proc, /sys, /dev and other excluded trees (the /mfs mount) are not there.
final class ExportedTree: Sendable {
    static let resolveInRoot: UInt64 = 0x10
    static let resolveNoMagicLinks: UInt64 = 0x02
    static let resolveNoSymlinks: UInt64 = 0x04
    static let resolveNoXDev: UInt64 = 0x01

    let root: String
    let rootFD: Int32
    /// Absolute paths (as the kernel reports them) that are not exported.
    let excluded: [String]
    /// The event loop whose thread serves calls only while they stay on local file systems:
    /// there a symlink is never followed off the root's file system (`LeavesLoopThread`).
    let loop: EventLoop?

    /// A call on the loop thread met a symlink leading off the root's file system, which the
    /// lane chosen for it did not see (swapped in since): it must run off the loop thread,
    /// where whatever that file system does holds up only its own lane.
    struct LeavesLoopThread: Error {
        let path: String
    }

    /// - Parameter loop: the loop whose thread must not follow symlinks off the root's file system.
    /// - Throws: `ConfigError` when the root cannot be opened.
    init(root: String, exclude: [String], loop: EventLoop? = nil) throws {
        self.loop = loop
        let fd = Glibc.open(root, Int32(OMX_O_PATH) | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigError("export root \(root): \(String(cString: strerror(errno)))") }
        rootFD = fd
        let canonical = ExportedTree.kernelPath(of: fd) ?? root
        self.root = canonical
        let base = canonical == "/" ? "" : canonical
        excluded = ["\(base)/proc", "\(base)/sys", "\(base)/dev"] + exclude.map { path in
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            return realpath(path, &buffer) != nil ? WireFileName.decode(cString: buffer) : path
        }
    }

    /// An error for `path`: the errno and text naming it.
    struct Failure: Error {
        let code: Int32
        let message: String
        init(_ code: Int32, _ path: String, _ what: String = "") {
            self.code = code
            message = "\(path.isEmpty ? "/" : path): \(what.isEmpty ? "" : what + ": ")\(String(cString: strerror(code)))"
        }
    }

    /// True when the kernel's path of `fd` lies in an excluded tree (or cannot be told).
    func isExcluded(_ fd: Int32) -> Bool {
        guard let path = ExportedTree.kernelPath(of: fd) else { return true }
        return isExcluded(path: path)
    }

    /// Where descriptor `fd` leads, as the kernel names it (in wire form, `WireFileName`).
    static func kernelPath(of fd: Int32) -> String? {
        readLinkBytes("/proc/self/fd/\(fd)").map { WireFileName.decode($0) }
    }

    /// True when `path` (as the kernel reports it), or the entry `name` in it, lies in an
    /// excluded tree.
    func isExcluded(path directory: String, name: String? = nil) -> Bool {
        var path = directory
        if let name { path = directory == "/" ? "/\(name)" : "\(directory)/\(name)" }
        return excluded.contains { path.isPath(atOrBeneath: $0) }
    }

    /// `path` (absolute, as the kernel reports it) as callers name it: relative to the root,
    /// "" for the root itself; nil when it lies outside the root or in an excluded tree.
    func exportedPath(of path: String) -> String? {
        guard !isExcluded(path: path) else { return nil }
        if path.isSamePath(as: root) { return "" }
        let base = root == "/" ? "/" : root + "/"
        guard path.utf8.starts(with: base.utf8) else { return nil }
        return String(decoding: path.utf8.dropFirst(base.utf8.count), as: UTF8.self)
    }

    /// Opens directory `path` beneath the root (O_PATH unless `flags` say otherwise), with its
    /// path as the kernel reports it (read once, for checking the entries in it too).
    private func openDirectory(_ path: String, flags: Int32 = Int32(OMX_O_PATH)) throws -> (fd: Int32, path: String) {
        let relative = path.isEmpty || path == "/" ? "." : path
        let how = flags | O_DIRECTORY | O_CLOEXEC
        // Most paths hold no symlink: then where they lead is the path itself, read without
        // asking the kernel. A path with one (ELOOP here) is resolved as usual and the kernel
        // says where it ended.
        let (fd, throughSymlink) = try resolve(relative, how, path)
        guard fd >= 0 else { throw Failure(errno, path) }
        guard let kernelPath = throughSymlink ? ExportedTree.kernelPath(of: fd) : lexicalPath(relative), !isExcluded(path: kernelPath) else {
            close(fd)
            throw Failure(ENOENT, path, "not exported")
        }
        return (fd, kernelPath)
    }

    /// Opens `relative` beneath the root with `flags`: through no symlink when it holds none,
    /// else following them (off the root's file system only away from the loop thread).
    /// - Returns: the descriptor (-1 with errno set when the kernel refused), and whether the
    ///   walk went through a symlink.
    /// - Throws: `LeavesLoopThread` for `path` when the loop thread would leave the root's file system.
    private func resolve(_ relative: String, _ flags: Int32, _ path: String) throws -> (fd: Int32, throughSymlink: Bool) {
        let bytes = WireFileName.cString(relative)
        let fd = omx_openat2(rootFD, bytes, flags, 0, ExportedTree.resolveInRoot | ExportedTree.resolveNoMagicLinks | ExportedTree.resolveNoSymlinks)
        guard fd < 0 && errno == ELOOP else { return (fd, false) }
        let followed = omx_openat2(rootFD, bytes, flags, 0, ExportedTree.resolveInRoot | ExportedTree.resolveNoMagicLinks | loopThreadResolve)
        if followed < 0 && errno == EXDEV && loopThreadResolve != 0 { throw LeavesLoopThread(path: path) }
        return (followed, true)
    }

    /// What a walk through symlinks adds on the loop thread: RESOLVE_NO_XDEV, stopping at the
    /// first mount point before the file system mounted there is touched; elsewhere nothing.
    private var loopThreadResolve: UInt64 { loop?.inLoop == true ? ExportedTree.resolveNoXDev : 0 }

    /// Whether `path` (the entry itself, not followed) is reached without leaving the root's
    /// file system: asks the kernel for an O_PATH descriptor with RESOLVE_NO_XDEV, which stops
    /// at the first mount point, before anything on the file system mounted there is touched
    /// (it may be an NFS or FUSE mount that hangs). A path that does not exist is as far as it
    /// goes: the call on it fails, or creates the entry, without leaving the file system.
    /// With `followingLast`, a symlink at the end is followed, as Statfs and Readdir do.
    func staysOnRootFileSystem(_ path: String, followingLast: Bool = false) -> Bool {
        probe(path, ExportedTree.resolveNoXDev, followingLast: followingLast) != EXDEV
    }

    /// Whether `path` leads where it says, through no symlink (the entry itself may be one):
    /// then the file systems it crosses are those mounted on its names as written
    /// (`lexicalPath`). Ask only when those may be touched: the kernel's walk crosses them
    /// (as far as the first symlink).
    func resolvesWithoutSymlinks(_ path: String, followingLast: Bool = false) -> Bool {
        probe(path, ExportedTree.resolveNoSymlinks, followingLast: followingLast) != ELOOP
    }

    /// Resolves `path` (the entry itself unless `followingLast`) with `resolve` flags besides
    /// RESOLVE_IN_ROOT: 0, or the errno it failed with.
    private func probe(_ path: String, _ resolve: UInt64, followingLast: Bool) -> Int32 {
        let relative = path.isEmpty || path == "/" ? "." : path
        let fd = omx_openat2(
            rootFD, WireFileName.cString(relative), Int32(OMX_O_PATH) | (followingLast ? 0 : O_NOFOLLOW) | O_CLOEXEC, 0,
            ExportedTree.resolveInRoot | ExportedTree.resolveNoMagicLinks | resolve)
        guard fd >= 0 else { return errno }
        close(fd)
        return 0
    }

    /// Where `relative` leads from the root when it holds no symlink: "." dropped, ".." taking
    /// off the last name and stopping at the root (as RESOLVE_IN_ROOT does).
    func lexicalPath(_ relative: String) -> String {
        walk(relative) { _ in }
    }

    /// Every place the kernel's walk of `relative` reaches when it holds no symlink, in order,
    /// the root first: a path may go into a directory and out again ("nfs/../file").
    func walkedPaths(_ relative: String) -> [String] {
        var reached = [root]
        _ = walk(relative) { reached.append($0) }
        return reached
    }

    /// Walks `relative` by its names from the root, as the kernel would through no symlink,
    /// telling `visit` each place reached; returns the last.
    private func walk(_ relative: String, _ visit: (String) -> Void) -> String {
        // The places above the current one, the root first.
        var places = [root]
        for name in relative.pathNames where name != "." {
            if name == ".." {
                if places.count > 1 { places.removeLast() }
            } else {
                let here = places[places.count - 1]
                places.append(here == "/" ? "/" + name : here + "/" + name)
            }
            visit(places[places.count - 1])
        }
        return places[places.count - 1]
    }

    /// The directory holding the last component of `path`, and that component's name (its
    /// bytes, for the kernel).
    /// - Throws: EINVAL for the root itself or a name of "." or "..".
    func parent(of path: String) throws -> (fd: Int32, name: [CChar]) {
        let parts = path.pathNames
        guard let last = parts.last, last != ".", last != ".." else { throw Failure(EINVAL, path, "no entry named") }
        let directory: (fd: Int32, path: String)
        do {
            directory = try openDirectory(parts.dropLast().joined(separator: "/"))
        } catch let failure as Failure {
            // Name the path asked about, not just its directory.
            throw Failure(failure.code, path)
        }
        if isExcluded(path: directory.path, name: String(last)) {
            close(directory.fd)
            throw Failure(ENOENT, path, "not exported")
        }
        return (directory.fd, WireFileName.cString(String(last)))
    }

    /// Runs `body` on the parent directory and name of `path`, closing the directory after.
    func withParent<T>(_ path: String, _ body: (Int32, [CChar]) throws -> T) throws -> T {
        let (fd, name) = try parent(of: path)
        defer { close(fd) }
        return try body(fd, name)
    }

    func attributes(_ info: stat) -> FileAttr {
        var attr = FileAttr()
        attr.ino = UInt64(info.st_ino)
        attr.dev = UInt64(info.st_dev)
        attr.mode = UInt32(info.st_mode)
        attr.nlink = UInt32(info.st_nlink)
        attr.uid = info.st_uid
        attr.gid = info.st_gid
        attr.size = UInt64(info.st_size)
        attr.blocks = UInt64(info.st_blocks)
        attr.blksize = UInt32(info.st_blksize)
        attr.atimeNs = info.st_atim.clampedNanoseconds
        attr.mtimeNs = info.st_mtim.clampedNanoseconds
        attr.ctimeNs = info.st_ctim.clampedNanoseconds
        return attr
    }

    /// lstat of `path` (the root when empty).
    func getattr(_ path: String) throws -> FileAttr {
        if path.isEmpty || path == "/" {
            var info = stat()
            guard fstat(rootFD, &info) == 0 else { throw Failure(errno, path) }
            return attributes(info)
        }
        return try withParent(path) { fd, name in try attributes(of: name, in: fd, path) }
    }

    /// lstat of entry `name` in directory `fd`, which is `path`'s: a call that made the entry
    /// reads it where it made it, without walking the path again (it may lead elsewhere now).
    func attributes(of name: [CChar], in fd: Int32, _ path: String) throws -> FileAttr {
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw Failure(errno, path) }
        return attributes(info)
    }

    /// A page of the entries of directory `path` with their attributes ("." and ".." left
    /// out), starting at `offset` (0, or a `next` this returned): at most about `pageBytes` of
    /// them on the wire, so that a directory of any size lists within the frame limit.
    /// - Returns: the entries, and where the next page starts (0 when this one ends the listing:
    ///   the directory's own position cookies, which stay valid when it is opened again).
    func readdir(_ path: String, from offset: Int64 = 0, pageBytes: Int) throws -> (
        entries: [(name: String, attr: FileAttr)], next: Int64
    ) {
        let (fd, kernelPath) = try openDirectory(path, flags: O_RDONLY)
        guard let directory = fdopendir(fd) else {
            close(fd)
            throw Failure(errno, path)
        }
        defer { closedir(directory) }
        if offset != 0 { seekdir(directory, Int(offset)) }
        var entries: [(String, FileAttr)] = []
        var bytes = 0
        while bytes < pageBytes, let entry = Glibc.readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { WireFileName.decode($0.prefix(while: { $0 != 0 })) }
            guard name != ".", name != "..", !isExcluded(path: kernelPath, name: name) else { continue }
            var info = stat()
            let found = withUnsafeBytes(of: entry.pointee.d_name) { fstatat(fd, $0.baseAddress!.assumingMemoryBound(to: CChar.self), &info, AT_SYMLINK_NOFOLLOW) }
            if found == 0 {
                entries.append((name, attributes(info)))
            } else if errno != ENOENT {
                // A directory the caller may read but not search: its names are still listed
                // (as ls shows them), with what readdir itself tells.
                entries.append((name, FileAttr.unknown(ino: UInt64(entry.pointee.d_ino), direntType: entry.pointee.d_type)))
            } else {
                continue  // gone meanwhile
            }
            bytes += name.utf8.count + ExportedTree.entryOverheadBytes
        }
        guard bytes >= pageBytes else { return (entries, 0) }
        // Full: the next page starts after the last entry read, unless that was the last one.
        let next = Int64(telldir(directory))
        return Glibc.readdir(directory) == nil ? (entries, 0) : (entries, next)
    }

    /// About how many bytes of entries one page of Readdir carries: a quarter of the frame
    /// limit, so that listing a directory takes few reopenings (each may cost a scan of it).
    static let readdirPageBytes = 4 << 20
    /// A generous bound on one entry's wire size beyond its name (its attributes and framing).
    static let entryOverheadBytes = 96

    /// Opens regular file `path` (creating it with `mode` under O_CREAT); device nodes,
    /// sockets and fifos are refused without being opened.
    func open(_ path: String, flags requested: Int32, mode: UInt32) throws -> (fd: Int32, attr: FileAttr) {
        // O_DIRECT is the client's affair (its mount's page cache): here it would only make
        // every read and write of a buffer not aligned to the disk's blocks fail with EINVAL.
        let flags = requested & ~Int32(OMX_O_DIRECT)
        return try withParent(path) { directory, name in
            var info = stat()
            if fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
                try refuseSpecial(info, path)
            }
            // O_NONBLOCK: a fifo swapped in meanwhile must not hang the open.
            let fd = openat(directory, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode_t(mode))
            guard fd >= 0 else { throw Failure(errno, path, "open") }
            guard fstat(fd, &info) == 0 else {
                let code = errno
                close(fd)
                throw Failure(code, path)
            }
            do { try refuseSpecial(info, path) } catch {
                close(fd)
                throw error
            }
            if flags & O_NONBLOCK == 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK & (O_APPEND | Int32(OMX_O_NOATIME))) }
            return (fd, attributes(info))
        }
    }

    private func refuseSpecial(_ info: stat, _ path: String) throws {
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG || type == S_IFDIR else {
            throw Failure(EACCES, path, "device nodes, sockets and fifos are not served")
        }
    }

    /// The figures of the file system holding `path` (a file or a directory).
    func statfs(_ path: String) throws -> FsStatfs {
        let relative = path.isEmpty || path == "/" ? "." : path
        let (fd, _) = try resolve(relative, Int32(OMX_O_PATH) | O_CLOEXEC, path)
        guard fd >= 0 else { throw Failure(errno, path) }
        defer { close(fd) }
        if isExcluded(fd) { throw Failure(ENOENT, path, "not exported") }
        var info = statvfs()
        guard fstatvfs(fd, &info) == 0 else { throw Failure(errno, path) }
        var result = FsStatfs()
        result.blockSize = UInt64(info.f_bsize)
        result.fragmentSize = UInt64(info.f_frsize)
        result.blocks = UInt64(info.f_blocks)
        result.blocksFree = UInt64(info.f_bfree)
        result.blocksAvailable = UInt64(info.f_bavail)
        result.files = UInt64(info.f_files)
        result.filesFree = UInt64(info.f_ffree)
        result.nameMax = UInt32(info.f_namemax)
        return result
    }
}
