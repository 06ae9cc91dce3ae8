import CFuse
import Dispatch
import Glibc
import Logging
import Shared
import Synchronization

/// The /mfs file system (oMFS): one directory per live node, `/mfs/<id>/...` being node
/// <id>'s exported tree served by its gateways, plus the HOWTO's per-process entries `here`,
/// `home`, `magic`, `lastexec` and `selected` (see `magicTarget`). Every operation runs on the target node with the caller's uid,
/// gid and groups, and carries the caller's job for the gateways' I/O counters. With DFSA on
/// (the default) a migrated job's I/O goes straight to the node whose files it uses; with
/// DFSA off (`dfsa=0`) a guest job's calls go through its home node's gateway, which relays
/// them, as openMosix's deputy did.
final class MfsMount: Sendable {
    nonisolated(unsafe) static var shared: MfsMount!

    let nodeID: UInt32
    let gateways: GatewayDirectory
    /// Writes of open files sent in the background.
    let writeBehind = WriteBehind()
    /// Direct file system access for migrated jobs; off: through their home node.
    let dfsa: Bool
    let logger: Logger
    /// Where `omx select` keeps each process's selected node (`<pid>.<start ticks>` files).
    let selections: String
    /// This node's Migrator, which knows where jobs' processes exec'd (`lastexec`).
    let migrator: RPCClient
    /// The node of each process's last successful create, by pid and start ticks.
    let lastCreate = Mutex<[String: UInt32]>([:])
    /// Each recent caller's groups, by pid, with its uid and gid and when they were read.
    let groupsCache = Mutex<[pid_t: (uid: uid_t, gid: gid_t, groups: [UInt32], atNs: UInt64)]>([:])
    /// An open file: where and through which gateway instance, its handle there, how to open
    /// it again (path, flags), which file it is (device and inode on its node) and the user who
    /// opened it.
    typealias OpenFile = (
        node: UInt32, instance: String, handle: UInt64, via: UInt32, path: String, flags: Int32, job: String, identity: FileIdentity?, stale: Bool,
        uid: UInt32
    )
    /// A file on its node: hard links share it, a file put in its place by rename does not.
    typealias FileIdentity = (dev: UInt64, ino: UInt64)
    /// Open files by our handle, and the hidden files libfuse may leave (`HiddenFiles`).
    private let files = Mutex<(next: UInt64, open: [UInt64: OpenFile], hidden: HiddenFiles)>((1, [:], HiddenFiles()))
    /// Attributes and listings of the nodes whose changes this mount follows.
    let cache = MountCache()
    /// This mount's id in the gateways' change feeds: its own changes are not reported to it.
    let client = UInt64.random(in: 1...UInt64.max)
    /// The handles of released files, closed at their gateways in batches.
    let releases: ReleaseQueue
    /// The file locks callers hold through the gateways.
    let locks: MountLocks
    /// The directories open on the mount.
    let directories = OpenDirectories()
    /// The names of files with several hard links, and the threads that make the kernel drop
    /// them (concurrent: one kept waiting for a slow file's pages holds up no other).
    let hardLinks = HardLinks()
    let invalidations = DispatchQueue(label: "omx-mfs-invalidations", attributes: .concurrent)

    /// - Throws: `UVError` when the thread that releases handles cannot be started.
    /// - Parameter locks: the callers' file locks (their markers tell the Migrator who holds some).
    init(nodeID: UInt32, gateways: GatewayDirectory, dfsa: Bool, logger: Logger, selections: String, migrator: RPCClient, locks: MountLocks) throws {
        self.nodeID = nodeID
        self.locks = locks
        self.gateways = gateways
        self.dfsa = dfsa
        self.logger = logger
        self.selections = selections
        self.migrator = migrator
        let client = client
        releases = try ReleaseQueue { holder, request in
            var request = request
            request.client = client
            _ = try? MfsMount.shared.send(holder.node, "Release", request, retry: false, pinned: holder.instance, via: holder.via)
        }
    }

    /// Where `path` points: the mount's root, a magic link, or a path on a node.
    enum Place {
        case root
        case magic(String)
        case node(UInt32, String)
        case missing
    }

    static let magicEntries = ["here", "home", "magic", "lastexec", "selected"]

    func place(_ path: String) -> Place {
        let parts = path.split(separator: "/", maxSplits: 1)
        guard let first = parts.first else { return .root }
        if MfsMount.magicEntries.contains(String(first)) { return parts.count == 1 ? .magic(String(first)) : .missing }
        guard let node = UInt32(first), gateways.map.node(id: node) != nil else { return .missing }
        return .node(node, parts.count > 1 ? String(parts[1]) : "")
    }

    /// Attributes of each file just created, by our handle: libfuse's getattr through the new
    /// handle, within the create itself, is answered from here once, sparing a round trip.
    /// (Never a lookup by path: another name may take the path at once, by rename or unlink.
    /// Nor for a file merely opened: libfuse asks through the handle after a change it makes.)
    private let createdAttrs = Mutex<[UInt64: (attr: FileAttr, atNs: UInt64)]>([:])

    /// The attributes `open` returned for the file it created under handle `id`, once, if
    /// still fresh (20 ms).
    func takeCreatedAttr(handle id: UInt64) -> FileAttr? {
        guard let entry = createdAttrs.withLock({ $0.removeValue(forKey: id) }) else { return nil }
        return monotonicNs() - entry.atNs < 20_000_000 ? entry.attr : nil
    }

    /// Forgets the created file's attributes (it was written to, or closed).
    func forgetCreatedAttr(handle id: UInt64) {
        _ = createdAttrs.withLock { $0.removeValue(forKey: id) }
    }

    /// DFSA off: the home of the calling guest job, whose gateway relays its calls to `node`;
    /// nil with DFSA on, for a process that is no guest here, and for files on its home.
    func relayHome(for node: UInt32) -> UInt32? {
        guard !dfsa, let pid = fuse_get_context()?.pointee.pid, let job = MfsMount.job(of: pid),
              let home = job.split(separator: ".").first.flatMap({ UInt32($0) }), home != nodeID, home != node
        else { return nil }
        return home
    }

    /// Sends a call to a gateway of `node`, or through the gateway of `via` (DFSA off).
    /// Returns the answer and the instance of `node` that gave it.
    func send(_ node: UInt32, _ method: String, _ request: FsRequest, retry: Bool, pinned: String? = nil, via: UInt32 = 0) throws -> (FsResponse, String) {
        guard via != 0 else { return try gateways.call(node, method, request, retry: retry, pinned: pinned) }
        var relayed = request
        relayed.relayTo = node
        relayed.relayInstance = pinned ?? ""
        relayed.relayRetry = retry
        let (answer, _) = try gateways.call(via, method, relayed, retry: retry)
        return (answer, answer.instance)
    }

    /// Calls the gateway of `node`; a failure to reach any instance is EIO.
    func call(_ node: UInt32, _ method: String, _ request: FsRequest, retry: Bool = true) -> (Int32, FsResponse) {
        do {
            let (answer, _) = try send(node, method, request, retry: retry, via: relayHome(for: node) ?? 0)
            return (answer.errorNumber == 0 ? 0 : -answer.errorNumber, answer)
        } catch {
            logger.warning("FSGateway.\(method) \(request.path) on node \(node): \(error)")
            return (-EIO, FsResponse())
        }
    }

    /// Every entry of directory `request.path` on `node`, page after page; a gateway whose
    /// pages come round to one already read is EIO.
    func listDirectory(_ node: UInt32, _ request: FsRequest) -> (Int32, [(name: String, attr: FileAttr)]) {
        var request = request
        request.paged = true
        var entries: [(name: String, attr: FileAttr)] = []
        var visited: Set<Int64> = [0]
        while true {
            let (code, answer) = call(node, "Readdir", request)
            guard code == 0 else { return (code, []) }
            entries += answer.entries
            if answer.nextOffset == 0 { return (0, entries) }
            guard visited.insert(answer.nextOffset).inserted else {
                logger.warning("FSGateway.Readdir \(request.path) on node \(node): the page after \(request.offset) starts at \(answer.nextOffset) again")
                return (-EIO, [])
            }
            request.offset = answer.nextOffset
        }
    }

    /// Opens `request.path` on `node` for the caller; returns our handle for it.
    func open(_ node: UInt32, _ request: FsRequest) throws -> (Int32, UInt64) {
        let via = relayHome(for: node) ?? 0
        let generation = cache.generation(node)
        let (answer, instance) = try send(node, "Open", request, retry: request.flags & O_CREAT == 0, via: via)
        guard answer.errorNumber == 0 else { return (-answer.errorNumber, 0) }
        if let attr = answer.attr { hardLinks.saw(node, request.path, attr) }
        if request.flags & O_CREAT != 0, let attr = answer.attr {
            cache.created(node, request.path, attr, by: request.cacheCaller)
        } else if request.flags & O_TRUNC != 0 {
            cache.written(node, request.path)
        } else if let attr = answer.attr {
            // Close-to-open: the file as the open found it, newer than what the cache may
            // hold while news of a change made on another node is on its way.
            cache.remember(node, request.path, attr, for: request.cacheCaller, since: generation)
        }
        let id = files.withLock { state in
            let id = state.next
            state.next += 1
            // Reopening must neither create, truncate nor fail on an existing file.
            state.open[id] = (
                node, instance, answer.handle, via, request.path, request.flags & ~(O_CREAT | O_EXCL | O_TRUNC), request.job,
                answer.attr.map { ($0.dev, $0.ino) }, false, request.callerUID)
            // Appends go out one at a time: the gateway finds their offset when it writes.
            if request.flags & O_ACCMODE != O_RDONLY && request.flags & O_APPEND == 0 { writeBehind.track(id, node: node, path: request.path, identity: answer.attr.map { HardLinks.Identity(node: node, dev: $0.dev, ino: $0.ino) }) }
            return id
        }
        if request.flags & O_CREAT != 0, let attr = answer.attr {
            createdAttrs.withLock { table in
                if table.count > 1_000 { table.removeAll() }
                table[id] = (attr, monotonicNs())
            }
        }
        return (0, id)
    }

    func file(_ id: UInt64) -> OpenFile? { files.withLock { $0.open[id] } }

    /// Whether two identities name one file (a device number of 0 is not known, and matches).
    static func isSameFile(_ one: FileIdentity, _ other: FileIdentity) -> Bool {
        one.ino == other.ino && (one.dev == other.dev || one.dev == 0 || other.dev == 0)
    }

    /// The names under which file `identity` on `node` is open here, when libfuse hid a file
    /// (a name the kernel was shown is known to `hardLinks`; a hidden one only here).
    func openNames(of identity: FileIdentity, on node: UInt32) -> [String] {
        files.withLock { state in
            guard !state.hidden.isEmpty else { return [] }
            return state.open.values.filter { open in open.node == node && open.identity.map { MfsMount.isSameFile($0, identity) } ?? false }.map(\.path)
        }
    }

    /// Which file `path` on `node` is, from a handle of it open here.
    func openIdentity(_ node: UInt32, _ path: String) -> FileIdentity? {
        files.withLock { state in state.open.values.first { $0.node == node && $0.identity != nil && PathKey($0.path) == PathKey(path) }?.identity }
    }

    /// One of our handles of `path` on `node` that user `uid` opened (nil: none is open).
    func heldOpen(_ node: UInt32, _ path: String, byUID uid: UInt32) -> UInt64? {
        files.withLock { state in
            state.open.first { $0.value.node == node && $0.value.uid == uid && !$0.value.stale && PathKey($0.value.path) == PathKey(path) }?.key
        }
    }

    /// The gateways' handles of the open files, by the instance that holds them.
    func openHandles() -> [ReleaseQueue.Holder: [UInt64]] {
        files.withLock { state in
            Dictionary(grouping: state.open.values) { ReleaseQueue.Holder(node: $0.node, instance: $0.instance, via: $0.via) }.mapValues { $0.map(\.handle) }
        }
    }

    /// Forgets open file `id`, released by the kernel. When it was the last handle of a file
    /// libfuse hid (unlinked while open), the hidden file is removed (`HiddenFiles`).
    func forget(_ id: UInt64) -> OpenFile? {
        forgetCreatedAttr(handle: id)
        let (open, orphan) = files.withLock { state -> (OpenFile?, FsRequest?) in
            guard let open = state.open.removeValue(forKey: id) else { return (nil, nil) }
            let orphan = state.hidden.released(node: open.node, open.path) {
                state.open.values.contains { $0.node == open.node && PathKey($0.path) == PathKey(open.path) }
            }
            return (open, orphan)
        }
        if let open, let orphan { removeHidden(open.node, open.path, as: orphan) }
        return open
    }

    /// `old` on `node` was renamed `new` (or, `exchanged`, the two swapped) by `request`
    /// through this mount: the files and directories open there follow (calls on them come
    /// without a path). A file libfuse hid whose last handle went meanwhile is removed. With
    /// `keepingBoth` (the two names were one file, which the rename left as they are) only what
    /// follows libfuse's names moves (libfuse gave `old`'s node the name `new`); the table of
    /// the file's names stays.
    func renamed(_ node: UInt32, _ old: String, to new: String, exchanged: Bool, by request: FsRequest, keepingBoth: Bool = false) {
        let orphaned = files.withLock { state -> Bool in
            for (id, open) in state.open where open.node == node {
                if let moved = OpenDirectories.renamed(open.path, old, to: new, exchanged: exchanged) {
                    state.open[id]?.path = moved
                }
            }
            return state.hidden.renamed(node: node, old, to: new, exchanged: exchanged, by: request) {
                state.open.values.contains { $0.node == node && PathKey($0.path) == PathKey(new) }
            }
        }
        directories.renamed(node: node, old, to: new, exchanged: exchanged)
        writeBehind.renamed(node: node, old, to: new, exchanged: exchanged)
        // A file whose name `new` was taken has one link less.
        if !keepingBoth { invalidate(node, hardLinks.renamed(node, old, to: new, exchanged: exchanged)) }
        if orphaned { removeHidden(node, new, as: request) }
    }

    /// Unlinks hidden file `path` on `node` as the caller of `unlinker` (the request that hid
    /// it), as libfuse would have; a failure is logged (the file stays, as it would have).
    private func removeHidden(_ node: UInt32, _ path: String, as unlinker: FsRequest) {
        var request = FsRequest(path: path)
        request.callerUID = unlinker.callerUID
        request.callerGID = unlinker.callerGID
        request.callerGroups = unlinker.callerGroups
        request.callerNode = unlinker.callerNode
        request.client = unlinker.client
        let code = call(node, "Unlink", request, retry: false).0
        if code == 0 {
            cache.removed(node, path, directory: false)
            invalidate(node, hardLinks.removed(node, path))
        } else if code != -ENOENT {
            logger.warning("FSGateway.Unlink \(path) on node \(node) (a file unlinked while open, whose last handle is closed): \(String(cString: strerror(-code)))")
        }
    }

    /// Calls the instance that holds open file `id`. When that instance lost the handle (it
    /// restarted) or cannot be reached (it died), the file is opened again by path on a live
    /// instance of the node and the call made once more; but an append whose answer was lost is
    /// EIO, as it may have been made.
    /// - Parameter caller: the caller's credentials, when the call is made off the FUSE thread
    ///   that took the request (write-behind); by default this thread's caller's.
    func callFile(_ id: UInt64, _ method: String, caller: FsRequest? = nil, _ fill: (inout FsRequest) -> Void) -> (Int32, FsResponse) {
        guard let open = file(id) else { return (-EBADF, FsResponse()) }
        guard !open.stale else { return (-ESTALE, FsResponse()) }
        let base = caller ?? request("")
        var request = base
        request.handle = open.handle
        request.job = open.job
        fill(&request)
        do {
            let (answer, _) = try send(open.node, method, request, retry: false, pinned: open.instance, via: open.via)
            if answer.errorNumber != EBADF { return (answer.errorNumber == 0 ? 0 : -answer.errorNumber, answer) }
        } catch let error as RPCError where error.status == .unimplemented {
            // A gateway older than the method: the handle is fine, the call cannot be made.
            logger.warning("FSGateway.\(method) \(open.path) on node \(open.node): \(error)")
            return (-ENOSYS, FsResponse())
        } catch let error as RPCError where !error.outcomeUnknown {
            // Not made there (never sent, or refused): opened again elsewhere, it is made once.
        } catch where method == "Write" && open.flags & O_APPEND != 0 {
            // The append may have been made before the answer was lost: made again, it would
            // add the data twice.
            logger.warning("FSGateway.Write \(open.path) on node \(open.node): \(error); not appended again, as it may have been")
            return (-EIO, FsResponse())
        } catch {}
        var reopen = base
        reopen.path = open.path
        reopen.flags = open.flags
        guard let (opened, instance) = try? send(open.node, "Open", reopen, retry: true, via: open.via), opened.errorNumber == 0 else {
            logger.warning("FSGateway.\(method) \(open.path) on node \(open.node): the open file was lost and cannot be opened again")
            return (-EIO, FsResponse())
        }
        if let identity = open.identity, let now = opened.attr, !MfsMount.isSameFile((now.dev, now.ino), identity) {
            // Another file took the name meanwhile (an editor's save, git checkout, rsync):
            // reading or writing it at the old file's offsets would mix the two. (A gateway
            // older than `dev` sends 0: the inode alone tells then.)
            releases.add(opened.handle, of: ReleaseQueue.Holder(node: open.node, instance: instance, via: open.via))
            files.withLock { $0.open[id]?.stale = true }
            logger.warning("FSGateway.\(method) \(open.path) on node \(open.node): the open file was lost, and the path now names another file (ESTALE)")
            return (-ESTALE, FsResponse())
        }
        let lockedThrough = locks.lost(through: id, node: open.node, file: MountLocks.fileKey(open))
        if !lockedThrough.isEmpty {
            // The locks went with the instance: no process may go on as if it held them, through
            // this file or any other it locked the file through.
            releases.add(opened.handle, of: ReleaseQueue.Holder(node: open.node, instance: instance, via: open.via))
            files.withLock { state in
                for handle in lockedThrough.union([id]) { state.open[handle]?.stale = true }
            }
            logger.warning("FSGateway.\(method) \(open.path) on node \(open.node): the open file was lost with the locks held through it (ESTALE)")
            return (-ESTALE, FsResponse())
        }
        files.withLock { $0.open[id] = (open.node, instance, opened.handle, open.via, open.path, open.flags, open.job, open.identity, false, open.uid) }
        logger.notice("reopened \(open.path) on node \(open.node) at \(instance) after its gateway instance was lost")
        request.handle = opened.handle
        do {
            let (answer, _) = try send(open.node, method, request, retry: false, pinned: instance, via: open.via)
            return (answer.errorNumber == 0 ? 0 : -answer.errorNumber, answer)
        } catch {
            return (-EIO, FsResponse())
        }
    }
}

extension FsRequest {
    /// Who the request speaks for, as the mount's cache tells callers apart.
    var cacheCaller: MountCache.Caller { MountCache.Caller(uid: callerUID, gid: callerGID, groups: callerGroups) }

    /// A request naming `handles` (at least one) for Release or Renew.
    init(naming handles: [UInt64]) {
        self.init()
        handle = handles[0]
        self.handles = Array(handles.dropFirst())
    }
}

/// `struct stat` from a gateway's attributes for a file on `node` (nil: the mount's own
/// entries, whose `ino` is already the mount's).
func fill(_ stat: UnsafeMutablePointer<stat>, _ attr: FileAttr, node: UInt32?) {
    memset(stat, 0, MemoryLayout<Glibc.stat>.size)
    stat.pointee.st_ino = ino_t(node.map { MountInode.of(node: $0, dev: attr.dev, ino: attr.ino) } ?? attr.ino)
    stat.pointee.st_mode = mode_t(attr.mode)
    stat.pointee.st_nlink = nlink_t(attr.nlink)
    stat.pointee.st_uid = attr.uid
    stat.pointee.st_gid = attr.gid
    stat.pointee.st_size = off_t(attr.size)
    stat.pointee.st_blocks = blkcnt_t(attr.blocks)
    stat.pointee.st_blksize = blksize_t(attr.blksize)
    stat.pointee.st_atim = timespec(nanoseconds: attr.atimeNs)
    stat.pointee.st_mtim = timespec(nanoseconds: attr.mtimeNs)
    stat.pointee.st_ctim = timespec(nanoseconds: attr.ctimeNs)
}

/// Synthetic attributes for the mount's own entries, numbered `ino` (`MountInode`).
func syntheticAttr(directory: Bool, size: Int = 0, ino: UInt64) -> FileAttr {
    var attr = FileAttr()
    attr.ino = ino
    attr.mode = directory ? UInt32(Glibc.S_IFDIR) | 0o555 : UInt32(Glibc.S_IFLNK) | 0o777
    attr.nlink = directory ? 2 : 1
    attr.size = UInt64(size)
    let now = Int64(wallClockMs()) * 1_000_000
    attr.atimeNs = now
    attr.mtimeNs = now
    attr.ctimeNs = now
    return attr
}
