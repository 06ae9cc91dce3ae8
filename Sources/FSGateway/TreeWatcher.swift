import CFileSystem
import Glibc
import Logging
import Shared

/// Sees every change made to the exported tree by a process other than this gateway (the
/// gateway records its own, with the mount that asked) and feeds them to a `ChangeFeed`. The
/// kernel's fanotify watches each file system mounted beneath the export root whole; those it
/// cannot watch are named to the mounts, which then cache nothing beneath them. File systems
/// mounted later are watched as they appear (and the mounts forget what they cached).
final class TreeWatcher: @unchecked Sendable {
    private let tree: ExportedTree
    private let feed: ChangeFeed
    private let logger: Logger
    private let fanotify: Int32
    private let mounts: Int32
    /// Watched file systems by id, with where one is mounted (to open directories by handle).
    /// Watcher thread only.
    private var watched: [[Int32]: String] = [:]

    /// Starts watching `tree` for as long as the process lives; when the kernel offers no
    /// fanotify here (no CAP_SYS_ADMIN, an old kernel), logs why and tells the feed that
    /// outside changes are not seen.
    static func start(tree: ExportedTree, feed: ChangeFeed, logger: Logger) {
        let fd = omx_fanotify_open()
        let mounts = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0, mounts >= 0 else {
            logger.warning("changes made on this node outside its gateways are not seen (fanotify: \(String(cString: strerror(-min(fd, 0)))); mounts will not cache this node's files")
            if fd >= 0 { close(fd) }
            if mounts >= 0 { close(mounts) }
            feed.setWatching(false, unwatched: [])
            return
        }
        let watcher = TreeWatcher(tree: tree, feed: feed, logger: logger, fanotify: fd, mounts: mounts)
        watcher.watchFileSystems()
        do {
            try startDetachedThread(named: "omx-treewatch") { watcher.run() }
        } catch {
            logger.warning("changes made on this node outside its gateways are not seen (\(error)); mounts will not cache this node's files")
            feed.setWatching(false, unwatched: [])
        }
    }

    private init(tree: ExportedTree, feed: ChangeFeed, logger: Logger, fanotify: Int32, mounts: Int32) {
        self.tree = tree
        self.feed = feed
        self.logger = logger
        self.fanotify = fanotify
        self.mounts = mounts
    }

    /// Watches every file system mounted at or beneath the root (and the root's own) that is
    /// not excluded, and tells the feed which could not be watched. Nothing is kept open on
    /// them: the gateway never keeps a file system from being unmounted.
    private func watchFileSystems() {
        watched = [:]
        var unwatched: [String] = []
        func notWatched(_ mountPoint: String, _ why: String) {
            let relative = tree.exportedPath(of: mountPoint) ?? ""
            guard !unwatched.contains(relative) else { return }
            unwatched.append(relative)
            logger.notice("changes beneath \(mountPoint) are not seen (\(why)); mounts will not cache files there")
        }
        for (mountPoint, type) in [(tree.root, "")] + MountInfo.mountPoints() where mountPoint == tree.root || tree.exportedPath(of: mountPoint) != nil {
            // A network or FUSE file system changes elsewhere too (other clients, a server): no
            // kernel here sees it, and watching one whose server hangs would hang this thread.
            if MountTable.mayHang(type: type) {
                notWatched(mountPoint, "a network or FUSE file system (\(type))")
                continue
            }
            var fsid: [Int32] = [0, 0]
            let rc = fsid.withUnsafeMutableBufferPointer { omx_fanotify_watch(fanotify, WireFileName.cString(mountPoint), $0.baseAddress) }
            guard rc == 0 else {
                notWatched(mountPoint, "fanotify: \(String(cString: strerror(-rc)))")
                continue
            }
            watched[fsid] = watched[fsid] ?? mountPoint
        }
        feed.setWatching(true, unwatched: unwatched)
    }

    /// Reads the kernel's events for ever; a change of the mount table watches new file systems.
    private func run() {
        let ownPID = getpid()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64 << 10, alignment: 8)
        var polls = [pollfd(fd: fanotify, events: Int16(POLLIN), revents: 0), pollfd(fd: mounts, events: Int16(POLLPRI), revents: 0)]
        while true {
            guard poll(&polls, 2, -1) > 0 else { continue }
            if polls[1].revents != 0 {
                // A file system mounted over a directory hides what the mounts may have cached
                // of it: they forget, and the new file system is watched.
                logger.info("the mount table changed: watching its file systems again; every mount forgets what it cached of this node")
                watchFileSystems()
                feed.loseEverything()
            }
            guard polls[0].revents & Int16(POLLIN) != 0 else { continue }
            let length = read(fanotify, buffer, 64 << 10)
            guard length > 0 else { continue }
            var offset = 0
            var event = omx_fanotify_event()
            // Descriptors on the file systems, opened as this batch needs them and closed after.
            var descriptors: [[Int32]: Int32] = [:]
            while omx_fanotify_next(buffer.assumingMemoryBound(to: CChar.self), length, &offset, &event) == 1 {
                if event.overflow != 0 {
                    logger.notice("the kernel dropped file-system events: every mount forgets what it cached of this node")
                    feed.loseEverything()
                } else if event.pid != ownPID, let handle = event.handle {
                    report(event, handle: handle, descriptors: &descriptors)
                }
            }
            for fd in descriptors.values { close(fd) }
            // While events keep coming, the next batch is read after the time the feed gathers
            // changes for one answer anyway: meanwhile the kernel merges repeated events on one
            // file into one (a writer's every write is an event).
            usleep(UInt32(ChangeFeed.gatherNs / 1_000))
        }
    }

    /// Feeds one event's path. A change inside a directory that is gone by now needs no
    /// report: the directory's own removal is reported, and empties what lay beneath it. An
    /// event that cannot be traced to a path otherwise makes every mount forget, since the
    /// feed cannot say what changed.
    private func report(_ event: omx_fanotify_event, handle: UnsafeRawPointer, descriptors: inout [[Int32]: Int32]) {
        let fsid = withUnsafeBytes(of: event.fsid) { Array($0.bindMemory(to: Int32.self)) }
        guard let mountPoint = watched[fsid] else { return }
        if descriptors[fsid] == nil {
            // open_by_handle_at needs a descriptor opened for reading (not O_PATH) on the file system.
            descriptors[fsid] = open(WireFileName.cString(mountPoint), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        let fd = omx_fanotify_open_directory(descriptors[fsid]!, handle)
        if fd < 0 && errno == ESTALE { return }
        guard fd >= 0, let directory = ExportedTree.kernelPath(of: fd) else {
            if fd >= 0 { close(fd) }
            logger.notice("a change on this node could not be traced to a path (\(String(cString: strerror(errno)))): every mount forgets what it cached of this node")
            feed.loseEverything()
            return
        }
        close(fd)
        let name = event.name.map { WireFileName.decode(cString: $0) } ?? ""
        let path = name.isEmpty ? directory : (directory == "/" ? "/" + name : directory + "/" + name)
        guard let exported = tree.exportedPath(of: path) else { return }
        feed.record(TreeChange(path: exported, entry: event.entry != 0, directory: event.directory != 0), origin: 0)
    }
}
