import OMXProto

/// A file's attributes as the gateway reports them (`omx.fsgateway.Attr`, like struct stat).
public struct FileAttr: Sendable, Equatable {
    public var ino: UInt64 = 0
    /// Type and permission bits, as st_mode.
    public var mode: UInt32 = 0
    public var nlink: UInt32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var size: UInt64 = 0
    /// 512-byte blocks.
    public var blocks: UInt64 = 0
    public var atimeNs: Int64 = 0
    public var mtimeNs: Int64 = 0
    public var ctimeNs: Int64 = 0
    public var blksize: UInt32 = 0
    /// st_dev: with `ino`, which file this is on its node (hard links share both).
    public var dev: UInt64 = 0

    public init() {}

    /// Whether these are an entry's attributes as readdir alone knows them (its stat was
    /// refused): `nlink` 0, only the type bits of `mode`, and `ino`.
    public var isUnknown: Bool { nlink == 0 }

    /// The attributes readdir alone tells of an entry (`d_ino`, `d_type`).
    public static func unknown(ino: UInt64, direntType: UInt8) -> FileAttr {
        var attr = FileAttr()
        attr.ino = ino
        attr.mode = UInt32(direntType) << 12  // DT_* is the S_IFMT type shifted down by 12 bits
        return attr
    }

    static let codec = ProtoCodec<Omx__Fsgateway__Attr>(
        name: "omx.fsgateway.Attr", initialize: { omx__fsgateway__attr__init($0) },
        packedSize: { omx__fsgateway__attr__get_packed_size($0) }, pack: { omx__fsgateway__attr__pack($0, $1) },
        unpack: { omx__fsgateway__attr__unpack($0, $1, $2) }, free: { omx__fsgateway__attr__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Fsgateway__Attr> {
        let message = arena.message(FileAttr.codec)
        message.pointee.ino = ino
        message.pointee.mode = mode
        message.pointee.nlink = nlink
        message.pointee.uid = uid
        message.pointee.gid = gid
        message.pointee.size = size
        message.pointee.blocks = blocks
        message.pointee.atime_ns = atimeNs
        message.pointee.mtime_ns = mtimeNs
        message.pointee.ctime_ns = ctimeNs
        message.pointee.blksize = blksize
        message.pointee.dev = dev
        return message
    }

    init(wire message: Omx__Fsgateway__Attr) {
        ino = message.ino
        mode = message.mode
        nlink = message.nlink
        uid = message.uid
        gid = message.gid
        size = message.size
        blocks = message.blocks
        atimeNs = message.atime_ns
        mtimeNs = message.mtime_ns
        ctimeNs = message.ctime_ns
        blksize = message.blksize
        dev = message.dev
    }
}

/// A file system's figures (`omx.fsgateway.StatfsResponse`, like struct statvfs).
public struct FsStatfs: Sendable, Equatable {
    public var blockSize: UInt64 = 0
    public var fragmentSize: UInt64 = 0
    public var blocks: UInt64 = 0
    public var blocksFree: UInt64 = 0
    public var blocksAvailable: UInt64 = 0
    public var files: UInt64 = 0
    public var filesFree: UInt64 = 0
    public var nameMax: UInt32 = 0

    public init() {}
}

/// Bytes of I/O one job did through a gateway from one node (`omx.fsgateway.IoCounter`).
public struct IoCounter: Sendable, Equatable {
    public var job: String
    public var node: UInt32
    public var bytesRead: UInt64
    public var bytesWritten: UInt64

    public init(job: String, node: UInt32, bytesRead: UInt64, bytesWritten: UInt64) {
        self.job = job
        self.node = node
        self.bytesRead = bytesRead
        self.bytesWritten = bytesWritten
    }
}

/// `omx.fsgateway.FsRequest`: the arguments of every file method (each uses the fields its
/// row in `fsgateway.proto` names).
public struct FsRequest: WireMessage, Equatable {
    public var path = ""
    public var path2 = ""
    public var handle: UInt64 = 0
    public var offset: Int64 = 0
    public var size: UInt32 = 0
    public var data: [UInt8] = []
    public var mode: UInt32 = 0
    public var flags: Int32 = 0
    public var uid: UInt32 = 0
    public var gid: UInt32 = 0
    public var atimeNs: Int64 = 0
    public var mtimeNs: Int64 = 0
    public var callerUID: UInt32 = 0
    public var callerGID: UInt32 = 0
    public var callerGroups: [UInt32] = []
    public var job = ""
    public var callerNode: UInt32 = 0
    public var datasync = false
    /// DFSA off: the node whose gateway the receiving (home) gateway relays this call to.
    public var relayTo: UInt32 = 0
    /// The instance of `relayTo` ("address:port") that holds the handle.
    public var relayInstance = ""
    /// The relayed call may be retried on the node's other instances.
    public var relayRetry = false
    /// The calling mount: the changes this call makes are not reported back to it.
    public var client: UInt64 = 0
    /// Release: more handles to close with `handle`.
    public var handles: [UInt64] = []
    /// Readdir: answer in pages, starting at `offset` (see `FsResponse.nextOffset`); without
    /// it, the whole listing in one answer.
    public var paged = false
    /// Lock, Getlk: the lock asked for, or tested.
    public var lock: FileLock?

    public init(path: String = "") { self.path = path }

    static let codec = ProtoCodec<Omx__Fsgateway__FsRequest>(
        name: "omx.fsgateway.FsRequest", initialize: { omx__fsgateway__fs_request__init($0) },
        packedSize: { omx__fsgateway__fs_request__get_packed_size($0) }, pack: { omx__fsgateway__fs_request__pack($0, $1) },
        unpack: { omx__fsgateway__fs_request__unpack($0, $1, $2) }, free: { omx__fsgateway__fs_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try FsRequest.codec.decode(bytes) { message in
            var request = FsRequest(path: cString(message.path))
            request.path2 = cString(message.path2)
            request.handle = message.handle
            request.offset = message.offset
            request.size = message.size
            request.data = cBytes(message.data)
            request.mode = message.mode
            request.flags = message.flags
            request.uid = message.uid
            request.gid = message.gid
            request.atimeNs = message.atime_ns
            request.mtimeNs = message.mtime_ns
            request.callerUID = message.caller_uid
            request.callerGID = message.caller_gid
            request.callerGroups = cValues(message.n_caller_groups, message.caller_groups)
            request.job = cString(message.job)
            request.callerNode = message.caller_node
            request.datasync = message.datasync != 0
            request.relayTo = message.relay_to
            request.relayInstance = cString(message.relay_instance)
            request.relayRetry = message.relay_retry != 0
            request.client = message.client
            request.handles = cValues(message.n_handles, message.handles)
            request.paged = message.paged != 0
            request.lock = message.lock.map { FileLock(wire: $0.pointee) }
            return request
        }
    }

    public func wire() -> [UInt8] {
        data.withUnsafeBytes { bytes in
            FsRequest.codec.encode { message, arena in
                message.path = arena.string(path)
                message.path2 = arena.string(path2)
                message.handle = handle
                message.offset = offset
                message.size = size
                message.data = ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)))
                message.mode = mode
                message.flags = flags
                message.uid = uid
                message.gid = gid
                message.atime_ns = atimeNs
                message.mtime_ns = mtimeNs
                message.caller_uid = callerUID
                message.caller_gid = callerGID
                message.n_caller_groups = callerGroups.count
                message.caller_groups = arena.values(callerGroups)
                message.job = arena.string(job)
                message.caller_node = callerNode
                message.datasync = datasync ? 1 : 0
                message.relay_to = relayTo
                message.relay_instance = arena.string(relayInstance)
                message.relay_retry = relayRetry ? 1 : 0
                message.client = client
                message.n_handles = handles.count
                message.handles = arena.values(handles)
                message.paged = paged ? 1 : 0
                message.lock = lock?.wire(in: arena)
            }
        }
    }
}

/// `omx.fsgateway.FsResponse`: `errorNumber` 0 and the results, or a POSIX errno value and
/// the error naming the path.
public struct FsResponse: WireMessage, Equatable {
    public var errorNumber: Int32 = 0
    public var error = ""
    public var attr: FileAttr?
    public var entries: [(name: String, attr: FileAttr)] = []
    public var handle: UInt64 = 0
    public var data: [UInt8] = []
    public var size: UInt32 = 0
    public var target = ""
    public var statfs: FsStatfs?
    public var counters: [IoCounter] = []
    /// A relayed call: the instance of the relay target that answered ("address:port").
    public var instance = ""
    /// Readdir: where the next page of entries starts (the next request's `offset`); 0 when
    /// the listing is complete.
    public var nextOffset: Int64 = 0
    /// Getlk: the lock that conflicts (type `.unlock`: none).
    public var lock: FileLock?
    /// Lock: whether the owner still holds a lock on the file afterwards.
    public var locksHeld = false

    public init() {}

    public init(errorNumber: Int32, error: String) {
        self.errorNumber = errorNumber
        self.error = error
    }

    public static func == (a: FsResponse, b: FsResponse) -> Bool {
        a.errorNumber == b.errorNumber && a.error == b.error && a.attr == b.attr && a.entries.map(\.name) == b.entries.map(\.name)
            && a.entries.map(\.attr) == b.entries.map(\.attr) && a.handle == b.handle && a.data == b.data && a.size == b.size
            && a.target == b.target && a.statfs == b.statfs && a.counters == b.counters && a.instance == b.instance && a.nextOffset == b.nextOffset
            && a.lock == b.lock && a.locksHeld == b.locksHeld
    }

    static let codec = ProtoCodec<Omx__Fsgateway__FsResponse>(
        name: "omx.fsgateway.FsResponse", initialize: { omx__fsgateway__fs_response__init($0) },
        packedSize: { omx__fsgateway__fs_response__get_packed_size($0) }, pack: { omx__fsgateway__fs_response__pack($0, $1) },
        unpack: { omx__fsgateway__fs_response__unpack($0, $1, $2) }, free: { omx__fsgateway__fs_response__free_unpacked($0, $1) })
    static let entryCodec = ProtoCodec<Omx__Fsgateway__DirEntry>(
        name: "omx.fsgateway.DirEntry", initialize: { omx__fsgateway__dir_entry__init($0) },
        packedSize: { omx__fsgateway__dir_entry__get_packed_size($0) }, pack: { omx__fsgateway__dir_entry__pack($0, $1) },
        unpack: { omx__fsgateway__dir_entry__unpack($0, $1, $2) }, free: { omx__fsgateway__dir_entry__free_unpacked($0, $1) })
    static let statfsCodec = ProtoCodec<Omx__Fsgateway__StatfsResponse>(
        name: "omx.fsgateway.StatfsResponse", initialize: { omx__fsgateway__statfs_response__init($0) },
        packedSize: { omx__fsgateway__statfs_response__get_packed_size($0) }, pack: { omx__fsgateway__statfs_response__pack($0, $1) },
        unpack: { omx__fsgateway__statfs_response__unpack($0, $1, $2) }, free: { omx__fsgateway__statfs_response__free_unpacked($0, $1) })
    static let counterCodec = ProtoCodec<Omx__Fsgateway__IoCounter>(
        name: "omx.fsgateway.IoCounter", initialize: { omx__fsgateway__io_counter__init($0) },
        packedSize: { omx__fsgateway__io_counter__get_packed_size($0) }, pack: { omx__fsgateway__io_counter__pack($0, $1) },
        unpack: { omx__fsgateway__io_counter__unpack($0, $1, $2) }, free: { omx__fsgateway__io_counter__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try FsResponse.codec.decode(bytes) { message in
            var response = FsResponse(errorNumber: message.error_number, error: cString(message.error))
            response.attr = message.attr.map { FileAttr(wire: $0.pointee) }
            response.entries = (0..<message.n_entries).compactMap { index in
                message.entries[index].map { (cString($0.pointee.name), $0.pointee.attr.map { FileAttr(wire: $0.pointee) } ?? FileAttr()) }
            }
            response.handle = message.handle
            response.data = cBytes(message.data)
            response.size = message.size
            response.target = cString(message.target)
            response.statfs = message.statfs.map { wire in
                var statfs = FsStatfs()
                statfs.blockSize = wire.pointee.block_size
                statfs.fragmentSize = wire.pointee.fragment_size
                statfs.blocks = wire.pointee.blocks
                statfs.blocksFree = wire.pointee.blocks_free
                statfs.blocksAvailable = wire.pointee.blocks_available
                statfs.files = wire.pointee.files
                statfs.filesFree = wire.pointee.files_free
                statfs.nameMax = wire.pointee.name_max
                return statfs
            }
            response.counters = (0..<message.n_counters).compactMap { index in
                message.counters[index].map { IoCounter(job: cString($0.pointee.job), node: $0.pointee.node, bytesRead: $0.pointee.bytes_read, bytesWritten: $0.pointee.bytes_written) }
            }
            response.instance = cString(message.instance)
            response.nextOffset = message.next_offset
            response.lock = message.lock.map { FileLock(wire: $0.pointee) }
            response.locksHeld = message.locks_held != 0
            return response
        }
    }

    public func wire() -> [UInt8] {
        data.withUnsafeBytes { bytes in
            FsResponse.codec.encode { message, arena in
                message.error_number = errorNumber
                message.error = arena.string(error)
                message.attr = attr?.wire(in: arena)
                let entryArray = arena.array(of: UnsafeMutablePointer<Omx__Fsgateway__DirEntry>?.self, count: entries.count)
                for (index, entry) in entries.enumerated() {
                    let wire = arena.message(FsResponse.entryCodec)
                    wire.pointee.name = arena.string(entry.name)
                    wire.pointee.attr = entry.attr.wire(in: arena)
                    entryArray[index] = wire
                }
                message.n_entries = entries.count
                message.entries = entryArray
                message.handle = handle
                message.data = ProtobufCBinaryData(len: bytes.count, data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)))
                message.size = size
                message.target = arena.string(target)
                if let statfs {
                    let wire = arena.message(FsResponse.statfsCodec)
                    wire.pointee.block_size = statfs.blockSize
                    wire.pointee.fragment_size = statfs.fragmentSize
                    wire.pointee.blocks = statfs.blocks
                    wire.pointee.blocks_free = statfs.blocksFree
                    wire.pointee.blocks_available = statfs.blocksAvailable
                    wire.pointee.files = statfs.files
                    wire.pointee.files_free = statfs.filesFree
                    wire.pointee.name_max = statfs.nameMax
                    message.statfs = wire
                }
                let counterArray = arena.array(of: UnsafeMutablePointer<Omx__Fsgateway__IoCounter>?.self, count: counters.count)
                for (index, counter) in counters.enumerated() {
                    let wire = arena.message(FsResponse.counterCodec)
                    wire.pointee.job = arena.string(counter.job)
                    wire.pointee.node = counter.node
                    wire.pointee.bytes_read = counter.bytesRead
                    wire.pointee.bytes_written = counter.bytesWritten
                    counterArray[index] = wire
                }
                message.n_counters = counters.count
                message.counters = counterArray
                message.instance = arena.string(instance)
                message.next_offset = nextOffset
                message.lock = lock?.wire(in: arena)
                message.locks_held = locksHeld ? 1 : 0
            }
        }
    }
}
