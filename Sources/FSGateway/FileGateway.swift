import CFileSystem
import Glibc
import Logging
import Shared
import Synchronization

/// The gateway service: every `FSGateway.*` file method on the exported tree, each run on
/// one thread under the caller's uid, gid and groups, in the lane its file system calls for
/// (`FileCallLanes`); open files are handles with leases, each usable by its opener only
/// (`OpenFiles`); I/O is counted per job and per node the job ran on.
final class FileGateway: Sendable {
    typealias Lane = FileCallLanes.Lane
    static let maxChunk = 1 << 20

    let tree: ExportedTree
    let logger: Logger
    let handles: OpenFiles
    /// The locks callers took through the handles.
    let locks = FileLocks()
    private let counters = Mutex<[String: IoCounter]>([:])
    let metrics: MetricsRegistry
    /// The series every read or write adds to, found once.
    let io: IoMetrics
    /// This gateway's node.
    let nodeID: UInt32
    /// Other nodes' gateways, for the calls of this node's guest jobs elsewhere (DFSA off).
    let relays: GatewayDirectory
    /// The changes to the tree, for the mounts' caches: those made through this gateway are
    /// recorded here, with the mount that asked.
    let feed: ChangeFeed
    /// Where each call runs, and the file systems that may hang.
    let lanes: FileCallLanes
    let mounts: MountTable

    /// - Parameter leaseNs: how long a file stays open that its opener neither uses nor renews.
    init(
        tree: ExportedTree, nodeID: UInt32, relays: GatewayDirectory, feed: ChangeFeed, lanes: FileCallLanes, leaseNs: UInt64, logger: Logger,
        metrics: MetricsRegistry
    ) {
        self.tree = tree
        self.lanes = lanes
        mounts = MountTable(tree: tree)
        // Off the loop thread a file closes where it is let go (Release runs in its lane, so it
        // answers once the file is closed); on it, in its lane, later.
        handles = OpenFiles(leaseNs: leaseNs) { fd, lane in
            guard lanes.loop.inLoop else { return _ = close(fd) }
            Task { _ = try? await lanes.run(lane, "Release") { close(fd); return FsResponse() } }
        }
        self.nodeID = nodeID
        self.relays = relays
        self.feed = feed
        self.logger = logger
        self.metrics = metrics
        io = IoMetrics(metrics)
    }

    /// Registers the file methods on `server`.
    func register(on server: RPCServer) {
        typealias Body = @Sendable (FsRequest, Caller, Lane) throws -> FsResponse
        let methods: [(String, @Sendable (FsRequest) -> Lane, Body)] = [
            ("Getattr", { r in r.handle == 0 ? self.metadataLane(r.path) : self.handleLane(r.handle, data: false) }, { r, caller, _ in
                var a = FsResponse()
                a.attr = try r.handle == 0 ? self.tree.getattr(r.path) : self.attributes(r.handle, caller)
                return a
            }),
            ("Readdir", { r in self.dataLane(r.path, listing: true) }, { r, _, _ in
                var a = FsResponse()
                (a.entries, a.nextOffset) = try self.tree.readdir(r.path, from: r.paged ? r.offset : 0, pageBytes: r.paged ? ExportedTree.readdirPageBytes : .max)
                return a
            }),
            ("Open", { r in self.metadataLane(r.path) }, { r, caller, lane in try self.open(r, caller, lane) }),
            ("Write", { r in self.handleLane(r.handle, data: true) }, { r, caller, _ in try self.write(r, caller) }),
            ("Fsync", { r in self.handleLane(r.handle, data: true) }, { r, caller, _ in try self.fsync(r, caller) }),
            // In the lane of the first file that is not on the loop thread: its close may wait
            // (an NFS flush), and the caller hears once it is done.
            ("Release", { r in ([r.handle] + r.handles).lazy.compactMap(self.handles.lane(of:)).first { $0 != .loop } ?? .loop }, { r, caller, _ in
                self.locks.forget(self.handles.release([r.handle] + r.handles, by: caller))
                return FsResponse()
            }),
            ("Renew", { _ in .loop }, { r, caller, _ in self.handles.renew([r.handle] + r.handles, by: caller); return FsResponse() }),
            ("Truncate", { r in r.handle != 0 ? self.handleLane(r.handle, data: true) : self.dataLane(r.path) }, { r, caller, _ in try self.truncate(r, caller) }),
            ("Chmod", { r in self.attributeLane(r) }, { r, caller, _ in
                try self.onHandleOrPath(r, caller, "chmod", { fchmod($0, mode_t(r.mode & 0o7777)) }) { try self.tree.chmod(r.path, mode: r.mode); return nil }
            }),
            ("Chown", { r in self.attributeLane(r) }, { r, caller, _ in
                try self.onHandleOrPath(r, caller, "chown", { fchown($0, r.uid, r.gid) }) { try self.tree.chown(r.path, uid: r.uid, gid: r.gid) }
            }),
            ("Utimens", { r in self.attributeLane(r) }, { r, caller, _ in
                try self.onHandleOrPath(r, caller, "utimens", { fd in
                    var times = [ExportedTree.utimeSpec(r.atimeNs), ExportedTree.utimeSpec(r.mtimeNs)]
                    return futimens(fd, &times)
                }) { try self.tree.utimens(r.path, atimeNs: r.atimeNs, mtimeNs: r.mtimeNs); return nil }
            }),
            ("Access", { r in self.metadataLane(r.path) }, { r, _, _ in try self.tree.access(r.path, mode: Int32(r.mode)); return FsResponse() }),
            ("Mkdir", { r in self.metadataLane(r.path) }, { r, _, _ in var a = FsResponse(); a.attr = try self.tree.mkdir(r.path, mode: r.mode); return a }),
            ("Mknod", { r in self.metadataLane(r.path) }, { r, _, _ in var a = FsResponse(); a.attr = try self.tree.mknod(r.path, mode: r.mode); return a }),
            ("Rmdir", { r in self.metadataLane(r.path) }, { r, _, _ in try self.tree.rmdir(r.path); return FsResponse() }),
            ("Unlink", { r in self.metadataLane(r.path) }, { r, _, _ in try self.tree.unlink(r.path); return FsResponse() }),
            ("Rename", { r in self.metadataLane(r.path, r.path2) }, { r, _, _ in
                var a = FsResponse()
                a.attr = try self.tree.rename(r.path, to: r.path2, flags: UInt32(bitPattern: r.flags))
                return a
            }),
            ("Link", { r in self.metadataLane(r.path, r.path2) }, { r, _, _ in var a = FsResponse(); a.attr = try self.tree.link(r.path, as: r.path2); return a }),
            ("Symlink", { r in self.metadataLane(r.path) }, { r, _, _ in var a = FsResponse(); a.attr = try self.tree.symlink(r.path2, at: r.path); return a }),
            ("Readlink", { r in self.metadataLane(r.path) }, { r, _, _ in var a = FsResponse(); a.target = try self.tree.readlink(r.path); return a }),
            ("Statfs", { r in self.metadataLane(r.path, followingLast: true) }, { r, _, _ in var a = FsResponse(); a.statfs = try self.tree.statfs(r.path); return a }),
            ("Lock", { r in self.handleLane(r.handle, data: false) }, { r, caller, _ in try self.lock(r, caller) }),
            ("Getlk", { r in self.handleLane(r.handle, data: false) }, { r, caller, _ in try self.testLock(r, caller) }),
            ("Counters", { _ in .loop }, { _, _, _ in var a = FsResponse(); a.counters = self.counters.withLock { Array($0.values) }; return a }),
        ]
        for (name, laneOf, body) in methods {
            server.register("FSGateway.\(name)") { (request: FsRequest, rpc) in
                if request.relayTo != 0 && request.relayTo != self.nodeID { return try await self.relay(name, request, caller: rpc.caller) }
                if let odd = [request.path, request.path2].first(where: { !WireFileName.isCanonical($0) }) {
                    return FsResponse(
                        errorNumber: EINVAL,
                        error: "FSGateway.\(name) \(odd.debugDescription): not a path in the wire form of file names (no NUL; bytes that are UTF-8 travel as they are: proto/README.md, \"File names\")")
                }
                let caller = rpc.caller
                let call = { @Sendable (lane: Lane) async throws -> FsResponse in
                    try await self.lanes.run(lane, name) {
                        let response = try self.perform(request, caller: caller, method: name, asCaller: !FileGateway.madeAsGateway.contains(name)) {
                            try body($0, caller, lane)
                        }
                        if response.errorNumber == 0 { self.recordChanges(name, request) }
                        return response
                    }
                }
                do {
                    return try await call(laneOf(request))
                } catch is ExportedTree.LeavesLoopThread {
                    // A symlink swapped in since the lane was chosen leads off the root's file
                    // system: the call follows it off the loop thread.
                    let lane = laneOf(request)
                    return try await call(lane == .loop ? .mayHang("symlinks") : lane)
                }
            }
        }
        // The feed names every changed path, in directories a user may not read: it is for the
        // mounts (and local root), not for local users.
        server.register("FSGateway.Changes") { (request: ChangesRequest, rpc) in
            if case let .local(_, uid, _, _) = rpc.caller, uid != 0 {
                throw RPCError(.permissionDenied, "FSGateway.Changes is for /mfs mounts and root, not for uid \(uid)")
            }
            return await self.feed.changes(since: request.since, client: request.client, waitMs: min(request.waitMs, 60_000))
        }
        // A read the page cache can answer takes microseconds: it is answered on the loop
        // thread; one that would wait for the disk goes to the pool.
        server.register("FSGateway.Read") { (request: FsRequest, rpc) in
            if request.relayTo != 0 && request.relayTo != self.nodeID { return try await self.relay("Read", request, caller: rpc.caller) }
            let caller = rpc.caller
            let lane = self.handleLane(request.handle, data: false)
            if lane == .loop, let cached = try? self.read(request, caller: caller, cachedOnly: true) { return cached }
            return try await self.lanes.run(lane == .loop ? .pool : lane, "Read") {
                try self.perform(request, caller: caller, method: "Read") { try self.read($0, caller: caller, cachedOnly: false)! }
            }
        }
    }

    /// The lane of a call on the metadata of `paths`: the loop thread while they reach only
    /// file systems that cannot hang, else the pool (the `.mayHang` lane when one may hang).
    func metadataLane(_ paths: String..., followingLast: Bool = false) -> Lane {
        if mounts.rootMayHang { return .pool }
        for path in paths {
            if let share = mayHangShare(path, followingLast: followingLast) { return .mayHang(share) }
        }
        return .loop
    }

    /// The lane of a call that moves data at `path`, or lists the directory `path`.
    private func dataLane(_ path: String, listing: Bool = false) -> Lane {
        if mounts.rootMayHang { return .pool }
        return mayHangShare(path, followingLast: listing, orHolds: listing).map { .mayHang($0) } ?? .pool
    }

    /// Whose share of the `.mayHang` lane a call on `path` takes: the file system that may hang
    /// on its way (its mount point), as the mount table names those mounted on its names as
    /// written, or "symlinks" for a path through a symlink that leaves the root's file system
    /// (which may lead anywhere); nil when it touches only file systems that cannot hang. A
    /// path through no symlink crosses just the file systems on its names, so the kernel's walk
    /// that tells is safe once the table has found them local. With `orHolds`, a file system
    /// that may hang mounted on an entry of `path` counts too (listings read their attributes).
    private func mayHangShare(_ path: String, followingLast: Bool = false, orHolds: Bool = false) -> String? {
        if let mountPoint = mounts.mayHang(tree.walkedPaths(path), orHolds: orHolds) { return mountPoint }
        let local = tree.resolvesWithoutSymlinks(path, followingLast: followingLast) || tree.staysOnRootFileSystem(path, followingLast: followingLast)
        return local ? nil : "symlinks"
    }

    /// The lane of a call on open handle `id`: where it was opened, and off the loop thread for
    /// moving data. An unknown handle is refused on the loop thread.
    func handleLane(_ id: UInt64, data: Bool) -> Lane {
        switch handles.lane(of: id) ?? .loop {
        case .loop: return data ? .pool : .loop
        case let lane: return lane
        }
    }

    /// Runs `body` with the caller's credentials on this thread (restored to ours after), or
    /// with the gateway's when not `asCaller`; its failures are the answer.
    /// - Throws: `ExportedTree.LeavesLoopThread` when the call must run off the loop thread.
    private func perform(
        _ request: FsRequest, caller: Caller, method: String, asCaller: Bool = true, _ body: (FsRequest) throws -> FsResponse
    ) throws -> FsResponse {
        guard asCaller else { return try answering(request, method: method) { try body(request) } }
        var uid = request.callerUID
        var gid = request.callerGID
        var groups = request.callerGroups
        if case let .local(_, peerUID, peerGID, peerGroups) = caller, peerUID != 0 {
            // Only root may speak for another user on the Unix socket: a user acts with the
            // ids and groups the kernel reports.
            uid = peerUID
            gid = peerGID
            groups = peerGroups
        }
        // Root's calls need no switch: the thread acts as root already, and root passes
        // permission checks whatever its groups.
        let switches = uid != 0 || gid != 0
        guard !switches || omx_set_thread_credentials(uid, gid, groups, groups.count) == 0 else {
            return FsResponse(errorNumber: errno, error: "FSGateway.\(method): cannot take uid \(uid) gid \(gid): \(String(cString: strerror(errno)))")
        }
        defer { if switches { _ = omx_set_thread_credentials(0, 0, nil, 0) } }
        return try answering(request, method: method) { try body(request) }
    }

    /// The methods made with the gateway's own rights, not the caller's: a lock needs a second
    /// open file description of a file the caller's handle already holds open (`FileLocks`).
    private static let madeAsGateway: Set<String> = ["Lock", "Getlk"]

    /// `body`'s answer, its failures turned into one.
    /// - Throws: `ExportedTree.LeavesLoopThread` when the call must run off the loop thread.
    private func answering(_ request: FsRequest, method: String, _ body: () throws -> FsResponse) throws -> FsResponse {
        do {
            return try body()
        } catch let failure as ExportedTree.Failure {
            return FsResponse(errorNumber: failure.code, error: "FSGateway.\(method) \(failure.message)")
        } catch let leaving as ExportedTree.LeavesLoopThread {
            throw leaving
        } catch {
            return FsResponse(errorNumber: EIO, error: "FSGateway.\(method) \(request.path): \(error)")
        }
    }

    /// Records what a successful call changed, as made by the mount that asked.
    private func recordChanges(_ method: String, _ request: FsRequest) {
        func record(_ path: String, entry: Bool, directory: Bool = false) {
            // As the mounts name it: "dir/file", whatever "." or "//" the caller wrote.
            guard let path = tree.exportedPath(of: tree.lexicalPath(path)) else { return }
            feed.record(TreeChange(path: path, entry: entry, directory: directory), origin: request.client)
        }
        /// Whether `path` is a directory now (asked only of calls that may change one's mode).
        func isDirectory(_ path: String) -> Bool { (try? tree.getattr(path))?.isDirectory ?? true }
        switch method {
        case "Open" where request.flags & O_CREAT != 0: record(request.path, entry: true)
        case "Open" where request.flags & O_TRUNC != 0: record(request.path, entry: false)
        case "Write", "Truncate":
            // A truncate names a path or, like a write, an open handle.
            guard request.handle != 0 else { return record(request.path, entry: false) }
            guard let opened = handles.path(of: request.handle) else { return }
            // A file renamed while open (logrotate) changes under its new name, which the
            // writer's mount does not know: every mount hears of that name instead (one change
            // per stream of writes, as the feed folds repeats).
            let openedExported = tree.exportedPath(of: tree.lexicalPath(opened))
            if let now = handles.currentPath(of: request.handle), let exported = tree.exportedPath(of: now),
               openedExported.map({ !$0.isSamePath(as: exported) }) ?? true {
                feed.record(TreeChange(path: exported, entry: false), origin: 0)
            } else {
                record(opened, entry: false)
            }
        case "Chmod", "Chown", "Utimens":
            guard request.handle != 0 else { return record(request.path, entry: false, directory: isDirectory(request.path)) }
            // An open file (never a directory), under the name it has now: not the request's
            // path, which the caller chose.
            if let now = handles.currentPath(of: request.handle) ?? handles.path(of: request.handle) { record(now, entry: false) }
        case "Unlink", "Symlink", "Mknod": record(request.path, entry: true)
        case "Mkdir", "Rmdir": record(request.path, entry: true, directory: true)
        case "Link":
            record(request.path2, entry: true)
            record(request.path, entry: false)
        case "Rename":
            let directory = isDirectory(request.path2)
            record(request.path, entry: true, directory: directory)
            record(request.path2, entry: true, directory: directory)
        default: break
        }
    }

    /// Counts I/O in the metrics and, when the request names the job it was for, per job and
    /// node. A local user's word on its job is not taken (on the Unix socket only root and
    /// other nodes' mounts over TCP are): it could make up jobs without end, or lead the
    /// Balancer astray.
    func tally(_ request: FsRequest, _ caller: Caller, read: UInt64, written: UInt64) {
        if read > 0 { io.readBytes.add(Double(read)) }
        if written > 0 { io.writtenBytes.add(Double(written)) }
        if case let .local(_, uid, _, _) = caller, uid != 0 { return }
        guard !request.job.isEmpty else { return }
        counters.withLock { counters in
            let key = "\(request.job)@\(request.callerNode)"
            var counter = counters[key] ?? IoCounter(job: request.job, node: request.callerNode, bytesRead: 0, bytesWritten: 0)
            counter.bytesRead += read
            counter.bytesWritten += written
            counters[key] = counter
        }
    }

    /// Closes handles unused for longer than their lease.
    func expireLeases() {
        let expired = handles.expire()
        locks.forget(expired.map(\.id))
        for (_, file) in expired {
            logger.notice("closed \(file.path) (opened by \(file.owner)): its handle was neither used nor renewed for \(handles.leaseNs / 1_000_000_000) s")
        }
    }
}
