import CFileSystem
import CFuse
import Dispatch
import Glibc
import Shared

/// The FUSE operations of the /mfs mount: C callbacks that hand each request to
/// `MfsMount.shared` and answer with 0, a byte count, or a negative errno.
enum MfsOperations {
    static var mount: MfsMount { MfsMount.shared }

    /// `struct stat` for `rest` on `node`: /mfs/N itself keeps its own number whatever
    /// directory the node exports.
    static func fillEntry(_ stat: UnsafeMutablePointer<stat>, _ attr: FileAttr, node: UInt32, _ rest: String) {
        guard rest.isEmpty else { return fill(stat, attr, node: node) }
        var root = attr
        root.ino = MountInode.node(node)
        fill(stat, root, node: nil)
    }

    static func operations() -> fuse_operations {
        var ops = fuse_operations()
        ops.getattr = { raw, stat, info in
            guard let stat else { return -EINVAL }
            // An open file (the kernel checking its size for a read or write; fstat comes by
            // path) is asked through its handle: it may have been renamed or unlinked on its
            // node meanwhile. The mount's cache answers only when what it holds of the file's
            // path is this file (the open renewed it, and every change since emptied it).
            if let info, let open = MfsOperations.mount.file(info.pointee.fh) {
                if let attr = MfsOperations.mount.takeCreatedAttr(handle: info.pointee.fh) {
                    fill(stat, attr, node: open.node)
                    return 0
                }
                MfsOperations.drainWrites(of: info.pointee.fh)
                let caller = MfsOperations.mount.request("")
                if !open.stale, let identity = open.identity,
                    case let .attr(attr) = MfsOperations.mount.cache.lookup(open.node, open.path, for: caller.cacheCaller),
                    MfsMount.isSameFile((attr.dev, attr.ino), identity)
                {
                    fill(stat, attr, node: open.node)
                    return 0
                }
                let (code, answer) = MfsOperations.mount.callFile(info.pointee.fh, "Getattr", caller: caller) { _ in }
                if code == 0, let attr = answer.attr {
                    fill(stat, attr, node: open.node)
                    MfsOperations.mount.hardLinks.saw(open.node, open.path, attr)
                }
                return code
            }
            guard let path = MfsOperations.path(raw, info) else { return -EBADF }
            switch MfsOperations.mount.place(path) {
            case .root:
                fill(stat, syntheticAttr(directory: true, ino: MountInode.root), node: nil)
                return 0
            case let .magic(name):
                let ino = MountInode.magic(MfsMount.magicEntries.firstIndex(of: name) ?? 0)
                fill(stat, syntheticAttr(directory: false, size: MfsOperations.mount.magicTarget(name).utf8.count, ino: ino), node: nil)
                return 0
            case let .node(node, rest):
                if rest.isEmpty, !MfsOperations.mount.gateways.isLive(node) { return -ENOENT }
                let request = MfsOperations.mount.request(rest)
                switch MfsOperations.mount.cache.lookup(node, rest, for: request.cacheCaller) {
                case let .attr(attr):
                    MfsOperations.fillEntry(stat, attr, node: node, rest)
                    return 0
                case .missing:
                    return -ENOENT
                case .unknown:
                    break
                }
                MfsOperations.mount.drainWrites(node: node, path: rest)
                let generation = MfsOperations.mount.cache.generation(node)
                let (code, answer) = MfsOperations.mount.call(node, "Getattr", request)
                if code == -EACCES, let id = MfsOperations.holdersFile(node, rest, request) {
                    // fstat reaches the mount as a stat of the file's path, which a directory on
                    // the way may no longer let the caller search: its open file answers.
                    let (heldCode, held) = MfsOperations.mount.callFile(id, "Getattr", caller: request) { _ in }
                    guard heldCode == 0, let attr = held.attr else { return code }
                    fill(stat, attr, node: node)
                    return 0
                }
                if code == 0, let attr = answer.attr {
                    MfsOperations.fillEntry(stat, attr, node: node, rest)
                    MfsOperations.mount.hardLinks.saw(node, rest, attr)
                    MfsOperations.mount.cache.remember(node, rest, attr, for: request.cacheCaller, since: generation)
                }
                return code
            case .missing: return -ENOENT
            }
        }
        ops.opendir = { raw, info in
            guard let info else { return -EINVAL }
            info.pointee.fh = MfsOperations.mount.directories.open(MfsOperations.path(raw))
            return 0
        }
        ops.releasedir = { _, info in
            if let info { MfsOperations.mount.directories.close(info.pointee.fh) }
            return 0
        }
        ops.readdir = { raw, buffer, filler, _, info, _ in
            guard let filler else { return -EINVAL }
            guard let path = MfsOperations.path(raw, info) else { return -EBADF }
            var entries: [(String, FileAttr)] = []
            var listed: UInt32?  // the node whose directory it is (nil: the mount's root)
            switch MfsOperations.mount.place(path) {
            case .root:
                let nodes = MfsOperations.mount.gateways.liveNodes()
                entries = nodes.map { (String($0), syntheticAttr(directory: true, ino: MountInode.node($0))) }
                    + MfsMount.magicEntries.enumerated().map { ($1, syntheticAttr(directory: false, size: 1, ino: MountInode.magic($0))) }
            case let .node(node, rest):
                let generation = MfsOperations.mount.cache.generation(node)
                let request = MfsOperations.mount.request(rest)
                let (code, listing) = MfsOperations.mount.listDirectory(node, request)
                guard code == 0 else { return code }
                entries = listing.map { ($0.name, $0.attr) }
                listed = node
                for entry in listing { MfsOperations.mount.hardLinks.saw(node, MountCache.join(rest, entry.name), entry.attr) }
                MfsOperations.mount.cache.rememberListing(node, rest, listing, for: request.cacheCaller, since: generation)
            case .magic: return -ENOTDIR
            case .missing: return -ENOENT
            }
            var info = stat()
            for name in [".", ".."] { _ = filler(buffer, name, nil, 0, fuse_fill_dir_flags(rawValue: 0)) }
            for (name, attr) in entries {
                fill(&info, attr, node: listed)
                // An entry known by name and type alone: its attributes are asked for when used.
                let plus = attr.isUnknown ? fuse_fill_dir_flags(rawValue: 0) : FUSE_FILL_DIR_PLUS
                if filler(buffer, WireFileName.cString(name), &info, 0, plus) != 0 { break }
            }
            return 0
        }
        ops.readlink = { raw, buffer, size in
            guard let buffer, size > 0 else { return -EINVAL }
            let target: String
            switch MfsOperations.mount.place(MfsOperations.path(raw)) {
            case let .magic(name): target = MfsOperations.mount.magicTarget(name)
            case let .node(node, rest):
                let (code, answer) = MfsOperations.mount.call(node, "Readlink", MfsOperations.mount.request(rest))
                guard code == 0 else { return code }
                target = answer.target
            case .root: return -EINVAL
            case .missing: return -ENOENT
            }
            let bytes = WireFileName.bytes(target).prefix(size - 1)
            for (index, byte) in bytes.enumerated() { buffer[index] = CChar(bitPattern: byte) }
            buffer[bytes.count] = 0
            return 0
        }
        ops.open = { raw, info in
            guard let info else { return -EINVAL }
            let code = MfsOperations.onNode(raw) { node, rest in MfsOperations.openFile(node, rest, flags: info.pointee.flags & ~(O_CREAT | O_EXCL), mode: 0, info: info) }
            // Close-to-open, as NFS: what was written and closed on another node before this
            // open is what it reads. The kernel drops the file's pages at an open, not its
            // size, which it may hold from before (within its cache time): expired, it asks
            // for the size again at the next read or fstat.
            if code == 0, let raw { omx_fuse_invalidate_path(raw) }
            return code
        }
        ops.create = { raw, mode, info in
            guard let info else { return -EINVAL }
            return MfsOperations.onNode(raw) { node, rest in MfsOperations.openFile(node, rest, flags: info.pointee.flags | O_CREAT, mode: UInt32(mode), info: info) }
        }
        ops.read = { _, buffer, size, offset, info in
            guard let info, let buffer else { return -EINVAL }
            MfsOperations.drainWrites(of: info.pointee.fh)
            var done = 0
            while done < size {
                let piece = min(size - done, 1 << 20)
                let (code, answer) = MfsOperations.mount.callFile(info.pointee.fh, "Read") {
                    $0.offset = Int64(offset) + Int64(done)
                    $0.size = UInt32(piece)
                }
                guard code == 0 else { return done > 0 ? Int32(done) : code }
                answer.data.withUnsafeBytes { bytes in
                    if let base = bytes.baseAddress { _ = memcpy(buffer + done, base, bytes.count) }
                }
                done += answer.data.count
                if answer.data.count < piece { break }
            }
            return Int32(done)
        }
        ops.write = { _, buffer, size, offset, info in MfsOperations.write(buffer, size, offset, info) }
        ops.flush = { _, info in
            guard let info, let file = MfsOperations.mount.writeBehind.file(info.pointee.fh) else { return 0 }
            if file.written(byThreadOf: fuse_get_context()?.pointee.pid ?? 0) { file.drain() }
            return file.failure
        }
        ops.release = { _, info in
            guard let info else { return 0 }
            MfsOperations.mount.writeBehind.finish(info.pointee.fh)
            MfsOperations.mount.locks.released(info.pointee.fh)
            guard let open = MfsOperations.mount.forget(info.pointee.fh) else { return 0 }
            // Nobody waits for a release's answer: it goes out in the background, in a batch.
            MfsOperations.mount.releases.add(open.handle, of: ReleaseQueue.Holder(node: open.node, instance: open.instance, via: open.via))
            return 0
        }
        ops.fsync = { _, datasync, info in
            guard let info else { return -EINVAL }
            MfsOperations.drainWrites(of: info.pointee.fh)
            let failure = MfsOperations.mount.writeBehind.file(info.pointee.fh)?.failure ?? 0
            let code = MfsOperations.mount.callFile(info.pointee.fh, "Fsync") { $0.datasync = datasync != 0 }.0
            return failure != 0 ? failure : code
        }
        ops.truncate = { raw, size, info in
            if let info, info.pointee.fh != 0 {
                MfsOperations.drainWrites(of: info.pointee.fh)
                defer {
                    if let open = MfsOperations.mount.file(info.pointee.fh) { MfsOperations.mount.cache.written(open.node, open.path) }
                    MfsOperations.mount.changedThrough(handle: info.pointee.fh)
                }
                return MfsOperations.mount.callFile(info.pointee.fh, "Truncate") { $0.offset = Int64(size) }.0
            }
            return MfsOperations.onNode(raw, info) { node, rest in
                MfsOperations.mount.drainWrites(node: node, path: rest)
                var request = MfsOperations.mount.request(rest)
                request.offset = Int64(size)
                defer {
                    MfsOperations.mount.cache.written(node, rest)
                    MfsOperations.mount.changedThrough(node, rest)
                }
                return MfsOperations.mount.call(node, "Truncate", request, retry: false).0
            }
        }
        ops.chmod = { raw, mode, info in
            MfsOperations.onNode(raw, info) { node, rest in
                var request = MfsOperations.mount.request(rest)
                request.mode = UInt32(mode)
                // The kernel passes the file's type along with the new mode.
                return MfsOperations.changeAttributes("Chmod", request, info, node, rest, directory: mode & S_IFMT == S_IFDIR)
            }
        }
        ops.chown = { raw, uid, gid, info in
            MfsOperations.onNode(raw, info) { node, rest in
                var request = MfsOperations.mount.request(rest)
                request.uid = uid
                request.gid = gid
                // The kernel does not say whether it is a directory: the gateway's answer does.
                return MfsOperations.changeAttributes("Chown", request, info, node, rest, directory: nil)
            }
        }
        ops.utimens = { raw, times, info in
            MfsOperations.onNode(raw, info) { node, rest in
                var request = MfsOperations.mount.request(rest)
                // No times means "now"; UTIME_NOW and UTIME_OMIT travel as their nanosecond values.
                request.atimeNs = times.map { MfsOperations.nanoseconds($0[0]) } ?? Int64(OMX_UTIME_NOW)
                request.mtimeNs = times.map { MfsOperations.nanoseconds($0[1]) } ?? Int64(OMX_UTIME_NOW)
                return MfsOperations.changeAttributes("Utimens", request, info, node, rest, directory: false)
            }
        }
        ops.access = { raw, mask in
            switch MfsOperations.mount.place(MfsOperations.path(raw)) {
            case .root, .magic: return mask & W_OK != 0 ? -EROFS : 0
            case let .node(node, rest):
                var request = MfsOperations.mount.request(rest)
                request.mode = UInt32(mask)
                return MfsOperations.mount.call(node, "Access", request).0
            case .missing: return -ENOENT
            }
        }
        ops.mkdir = { raw, mode in
            MfsOperations.onNode(raw) { node, rest in
                var request = MfsOperations.mount.request(rest)
                request.mode = UInt32(mode)
                let (code, answer) = MfsOperations.mount.call(node, "Mkdir", request, retry: false)
                if code == 0 { MfsOperations.mount.cache.created(node, rest, answer.attr, by: request.cacheCaller, emptyDirectory: true) }
                return code
            }
        }
        ops.mknod = { raw, mode, _ in
            MfsOperations.onNode(raw) { node, rest in
                var request = MfsOperations.mount.request(rest)
                request.mode = UInt32(mode)
                let (code, answer) = MfsOperations.mount.call(node, "Mknod", request, retry: false)
                if code == 0 { MfsOperations.mount.cache.created(node, rest, answer.attr, by: request.cacheCaller) }
                return code
            }
        }
        ops.rmdir = { raw in MfsOperations.remove(raw, "Rmdir") }
        ops.unlink = { raw in MfsOperations.remove(raw, "Unlink") }
        ops.symlink = { target, raw in
            MfsOperations.onNode(raw) { node, rest in
                var request = MfsOperations.mount.request(rest)
                request.path2 = MfsOperations.path(target)
                let (code, answer) = MfsOperations.mount.call(node, "Symlink", request, retry: false)
                if code == 0 { MfsOperations.mount.cache.created(node, rest, answer.attr, by: request.cacheCaller) }
                return code
            }
        }
        ops.rename = { from, to, flags in MfsOperations.rename(from, to, flags) }
        ops.link = { from, to in MfsOperations.twoPaths(from, to, "Link") { _ in } cached: { MfsOperations.linked($0, $1, $2) } }
        ops.lock = { _, info, command, lock in
            guard let info, let lock else { return -EINVAL }
            return MfsOperations.lock(info, command, lock)
        }
        ops.flock = { _, info, operation in
            guard let info else { return -EINVAL }
            return MfsOperations.flock(info, operation)
        }
        ops.statfs = { raw, info in
            guard let info else { return -EINVAL }
            var node = MfsOperations.mount.nodeID
            var rest = ""
            if case let .node(target, inside) = MfsOperations.mount.place(MfsOperations.path(raw)) {
                node = target
                rest = inside
            }
            let (code, answer) = MfsOperations.mount.call(node, "Statfs", MfsOperations.mount.request(rest))
            guard code == 0, let figures = answer.statfs else { return code == 0 ? -EIO : code }
            memset(info, 0, MemoryLayout<statvfs>.size)
            info.pointee.f_bsize = UInt(figures.blockSize)
            info.pointee.f_frsize = UInt(figures.fragmentSize)
            info.pointee.f_blocks = fsblkcnt_t(figures.blocks)
            info.pointee.f_bfree = fsblkcnt_t(figures.blocksFree)
            info.pointee.f_bavail = fsblkcnt_t(figures.blocksAvailable)
            info.pointee.f_files = fsfilcnt_t(figures.files)
            info.pointee.f_ffree = fsfilcnt_t(figures.filesFree)
            info.pointee.f_namemax = UInt(figures.nameMax)
            return 0
        }
        return ops
    }

    /// A timespec as utimensat takes it, in nanoseconds (UTIME_NOW / UTIME_OMIT kept as is).
    static func nanoseconds(_ spec: timespec) -> Int64 {
        if spec.tv_nsec == Int(OMX_UTIME_NOW) || spec.tv_nsec == Int(OMX_UTIME_OMIT) { return Int64(spec.tv_nsec) }
        return spec.clampedNanoseconds
    }

    static func openFile(_ node: UInt32, _ rest: String, flags: Int32, mode: UInt32, info: UnsafeMutablePointer<fuse_file_info>) -> Int32 {
        var request = MfsOperations.mount.request(rest, job: true)
        request.flags = flags
        request.mode = mode
        // An open comes after the writes queued to the file before it: a truncating one empties
        // the file of them, and any other finds them in the size it answers.
        MfsOperations.mount.drainWrites(node: node, path: rest)
        do {
            let (code, handle) = try MfsOperations.mount.open(node, request)
            if code == -ENOENT {
                // The kernel opens a name it holds from before (its cache time) without asking,
                // and an open with O_CREAT but not O_EXCL is sent as a plain open: a file removed
                // on its node (or through another node's mount) meanwhile would stay missing
                // for it, where the disk makes it anew. ESTALE has the kernel walk the path once
                // more, asking for every name (a missing one then comes as such, or is created).
                MfsOperations.mount.cache.removed(node, rest, directory: false)
                // Its directory may have gone too (a create's ENOENT): asked for afresh as well.
                let parent = MountCache.split(rest).parent
                if !parent.isEmpty { MfsOperations.mount.cache.changed(node, parent) }
                return -ESTALE
            }
            guard code == 0 else { return code }
            if flags & O_TRUNC != 0 { MfsOperations.mount.changedThrough(node, rest) }
            if flags & O_CREAT != 0 { MfsOperations.mount.createdOn(node) }
            info.pointee.fh = handle
            // An append must reach the gateway whole: through the page cache the kernel splits
            // a write at a page it does not hold whole, and the gateway appends each part at the
            // end of file, where another node's append may land between them.
            if flags & O_APPEND != 0 { info.pointee.direct_io = 1 }
            return 0
        } catch {
            MfsOperations.mount.logger.warning("FSGateway.Open \(rest) on node \(node): \(error)")
            return -EIO
        }
    }
}
