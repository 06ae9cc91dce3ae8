import CFuse
import Glibc
import Logging
import Shared
import Synchronization

/// The /mfs file system (oMFS): one directory per live node, `/mfs/<id>/...` being node
/// <id>'s exported tree served by its gateways, plus the per-process entries `here` (the
/// node the caller runs on) and `home` (the caller's job's home node; this node for a
/// process that is no job). Every operation runs on the target node with the caller's uid,
/// gid and groups, and carries the caller's job for the gateways' I/O counters (DFSA: a
/// migrated job's I/O goes straight to the node whose files it uses).
final class MfsMount: Sendable {
    nonisolated(unsafe) static var shared: MfsMount!

    let nodeID: UInt32
    let gateways: GatewayDirectory
    let logger: Logger
    /// A file open on a node: the gateway instance that holds it ("host:port") and its handle there.
    typealias OpenFile = (node: UInt32, instance: String, handle: UInt64)
    /// Open files by our handle.
    private let files = Mutex<(next: UInt64, open: [UInt64: OpenFile])>((1, [:]))

    init(nodeID: UInt32, gateways: GatewayDirectory, logger: Logger) {
        self.nodeID = nodeID
        self.gateways = gateways
        self.logger = logger
    }

    /// Where `path` points: the mount's root, a magic link, or a path on a node.
    enum Place {
        case root
        case magic(String)
        case node(UInt32, String)
        case missing
    }

    static let magicEntries = ["here", "home"]

    func place(_ path: String) -> Place {
        let parts = path.split(separator: "/", maxSplits: 1)
        guard let first = parts.first else { return .root }
        if MfsMount.magicEntries.contains(String(first)) { return parts.count == 1 ? .magic(String(first)) : .missing }
        guard let node = UInt32(first), gateways.map.node(id: node) != nil else { return .missing }
        return .node(node, parts.count > 1 ? String(parts[1]) : "")
    }

    /// The caller's credentials and job, for the gateway.
    func request(_ path: String) -> FsRequest {
        var request = FsRequest(path: path)
        if let context = fuse_get_context()?.pointee {
            request.callerUID = context.uid
            request.callerGID = context.gid
            var groups = [gid_t](repeating: 0, count: 64)
            let count = omx_fuse_caller_groups(Int32(groups.count), &groups)
            if count > 0 { request.callerGroups = Array(groups.prefix(Int(min(count, 64)))) }
            request.job = MfsMount.job(of: context.pid) ?? ""
        }
        request.callerNode = nodeID
        return request
    }

    /// The job whose namespace `pid` runs in: the spool name of the nearest omx-jobinit
    /// ancestor ("2.17"), or nil.
    static func job(of pid: pid_t) -> String? {
        var current = pid
        for _ in 0..<64 where current > 1 {
            if let bytes = try? readFileBytes("/proc/\(current)/cmdline") {
                let arguments = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                if arguments.count > 2, arguments[0].hasSuffix("omx-jobinit"), arguments[1] == "--spool" {
                    return arguments[2].split(separator: "/").last.map(String.init)
                }
            }
            guard let stat = try? readTextFile("/proc/\(current)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 1, let parent = pid_t(fields[1]) else { return nil }
            current = parent
        }
        return nil
    }

    /// What a magic entry points at for the calling process.
    func magicTarget(_ name: String) -> String {
        switch name {
        case "home":
            let pid = fuse_get_context()?.pointee.pid ?? 0
            if let job = MfsMount.job(of: pid), let home = job.split(separator: ".").first { return String(home) }
            return String(nodeID)
        default:
            return String(nodeID)
        }
    }

    /// Calls the gateway of `node`; a failure to reach any instance is EIO.
    func call(_ node: UInt32, _ method: String, _ request: FsRequest, retry: Bool = true) -> (Int32, FsResponse) {
        do {
            let (answer, _) = try gateways.call(node, method, request, retry: retry)
            return (answer.errorNumber == 0 ? 0 : -answer.errorNumber, answer)
        } catch {
            logger.warning("FSGateway.\(method) \(request.path) on node \(node): \(error)")
            return (-EIO, FsResponse())
        }
    }

    func remember(node: UInt32, instance: String, handle: UInt64) -> UInt64 {
        files.withLock { state in
            let id = state.next
            state.next += 1
            state.open[id] = (node, instance, handle)
            return id
        }
    }

    func file(_ id: UInt64) -> OpenFile? { files.withLock { $0.open[id] } }

    func forget(_ id: UInt64) -> OpenFile? { files.withLock { $0.open.removeValue(forKey: id) } }

    /// Calls the instance that holds open file `id` (no retry: the handle lives there).
    func callFile(_ id: UInt64, _ method: String, _ fill: (inout FsRequest) -> Void) -> (Int32, FsResponse) {
        guard let open = file(id) else { return (-EBADF, FsResponse()) }
        var request = request("")
        request.handle = open.handle
        fill(&request)
        do {
            let (answer, _) = try gateways.call(open.node, method, request, retry: false, pinned: open.instance)
            return (answer.errorNumber == 0 ? 0 : -answer.errorNumber, answer)
        } catch {
            logger.warning("FSGateway.\(method) on node \(open.node) (\(open.instance)): \(error); the open file is lost")
            return (-EIO, FsResponse())
        }
    }
}

/// `struct stat` from a gateway's attributes.
func fill(_ stat: UnsafeMutablePointer<stat>, _ attr: FileAttr) {
    memset(stat, 0, MemoryLayout<Glibc.stat>.size)
    stat.pointee.st_ino = ino_t(attr.ino)
    stat.pointee.st_mode = mode_t(attr.mode)
    stat.pointee.st_nlink = nlink_t(attr.nlink)
    stat.pointee.st_uid = attr.uid
    stat.pointee.st_gid = attr.gid
    stat.pointee.st_size = off_t(attr.size)
    stat.pointee.st_blocks = blkcnt_t(attr.blocks)
    stat.pointee.st_blksize = blksize_t(attr.blksize)
    stat.pointee.st_atim = timespec(tv_sec: Int(attr.atimeNs / 1_000_000_000), tv_nsec: Int(attr.atimeNs % 1_000_000_000))
    stat.pointee.st_mtim = timespec(tv_sec: Int(attr.mtimeNs / 1_000_000_000), tv_nsec: Int(attr.mtimeNs % 1_000_000_000))
    stat.pointee.st_ctim = timespec(tv_sec: Int(attr.ctimeNs / 1_000_000_000), tv_nsec: Int(attr.ctimeNs % 1_000_000_000))
}

/// Synthetic attributes for the mount's own entries.
func syntheticAttr(directory: Bool, size: Int = 0) -> FileAttr {
    var attr = FileAttr()
    attr.mode = directory ? UInt32(Glibc.S_IFDIR) | 0o555 : UInt32(Glibc.S_IFLNK) | 0o777
    attr.nlink = directory ? 2 : 1
    attr.size = UInt64(size)
    let now = Int64(wallClockMs()) * 1_000_000
    attr.atimeNs = now
    attr.mtimeNs = now
    attr.ctimeNs = now
    return attr
}
