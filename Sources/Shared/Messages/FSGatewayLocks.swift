import OMXProto

/// `omx.fsgateway.FileLock`: a lock on a file, fcntl's (a byte range) or flock's (the whole
/// file), of one lock owner at a mount.
public struct FileLock: Sendable, Equatable {
    /// `omx.fsgateway.LockType`.
    public enum Kind: Int32, Sendable {
        case unlock = 0
        /// Shared.
        case read = 1
        /// Exclusive.
        case write = 2
    }

    /// The type's number on the wire, kept as it came (a relay passes on one it does not know).
    public var typeNumber: Int32
    /// Nil: a type this build does not know (the gateway refuses it with EINVAL).
    public var type: Kind? {
        get { Kind(rawValue: typeNumber) }
        set { typeNumber = (newValue ?? .unlock).rawValue }
    }
    /// fcntl: the first byte locked.
    public var start: Int64
    /// fcntl: how many bytes; 0 = to the end of the file, however far it grows.
    public var length: Int64
    /// Whose lock it is at the calling mount (the kernel's lock owner).
    public var owner: UInt64
    /// A flock lock (the whole file), else an fcntl lock.
    public var wholeFile: Bool
    /// Getlk's answer: the process of the gateway's node holding it (0: held through a gateway).
    public var pid: Int32

    public init(type: Kind, start: Int64 = 0, length: Int64 = 0, owner: UInt64, wholeFile: Bool = false, pid: Int32 = 0) {
        typeNumber = type.rawValue
        self.start = start
        self.length = length
        self.owner = owner
        self.wholeFile = wholeFile
        self.pid = pid
    }

    static let codec = ProtoCodec<Omx__Fsgateway__FileLock>(
        name: "omx.fsgateway.FileLock", initialize: { omx__fsgateway__file_lock__init($0) },
        packedSize: { omx__fsgateway__file_lock__get_packed_size($0) }, pack: { omx__fsgateway__file_lock__pack($0, $1) },
        unpack: { omx__fsgateway__file_lock__unpack($0, $1, $2) }, free: { omx__fsgateway__file_lock__free_unpacked($0, $1) })

    init(wire message: Omx__Fsgateway__FileLock) {
        typeNumber = Int32(bitPattern: message.type.rawValue)
        start = message.start
        length = message.length
        owner = message.owner
        wholeFile = message.whole_file != 0
        pid = message.pid
    }

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Fsgateway__FileLock> {
        let message = arena.message(FileLock.codec)
        message.pointee.type = Omx__Fsgateway__LockType(rawValue: UInt32(bitPattern: typeNumber))
        message.pointee.start = start
        message.pointee.length = length
        message.pointee.owner = owner
        message.pointee.whole_file = wholeFile ? 1 : 0
        message.pointee.pid = pid
        return message
    }
}
