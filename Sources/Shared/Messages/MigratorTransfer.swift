import OMXProto

/// One image file of a migration (`omx.migrator.ImageFile`).
public struct ImageFile: Sendable, Equatable {
    /// Relative to the transfer's image directory.
    public var path: String
    public var size: UInt64

    public init(path: String, size: UInt64) {
        self.path = path
        self.size = size
    }
}

/// `omx.migrator.TransferBegin`: a migration's images are coming.
public struct TransferBegin: WireMessage, Equatable {
    public var transfer: String
    public var job: Job
    public var files: [ImageFile]
    /// The node sending.
    public var source: UInt32

    public init(transfer: String, job: Job, files: [ImageFile], source: UInt32) {
        self.transfer = transfer
        self.job = job
        self.files = files
        self.source = source
    }

    static let codec = ProtoCodec<Omx__Migrator__TransferBegin>(
        name: "omx.migrator.TransferBegin", initialize: { omx__migrator__transfer_begin__init($0) },
        packedSize: { omx__migrator__transfer_begin__get_packed_size($0) }, pack: { omx__migrator__transfer_begin__pack($0, $1) },
        unpack: { omx__migrator__transfer_begin__unpack($0, $1, $2) }, free: { omx__migrator__transfer_begin__free_unpacked($0, $1) })
    static let fileCodec = ProtoCodec<Omx__Migrator__ImageFile>(
        name: "omx.migrator.ImageFile", initialize: { omx__migrator__image_file__init($0) },
        packedSize: { omx__migrator__image_file__get_packed_size($0) }, pack: { omx__migrator__image_file__pack($0, $1) },
        unpack: { omx__migrator__image_file__unpack($0, $1, $2) }, free: { omx__migrator__image_file__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try TransferBegin.codec.decode(bytes) { message in
            guard let job = message.job else { throw RPCError(.invalidArgument, "TransferBegin without a job") }
            let files = (0..<message.n_files).compactMap { index in
                message.files[index].map { ImageFile(path: cString($0.pointee.path), size: $0.pointee.size) }
            }
            return TransferBegin(transfer: cString(message.transfer), job: Job(wire: job.pointee), files: files, source: message.source)
        }
    }

    public func wire() -> [UInt8] {
        TransferBegin.codec.encode { message, arena in
            message.transfer = arena.string(transfer)
            message.job = job.wire(in: arena)
            let array = arena.array(of: UnsafeMutablePointer<Omx__Migrator__ImageFile>?.self, count: files.count)
            for (index, file) in files.enumerated() {
                let entry = arena.message(TransferBegin.fileCodec)
                entry.pointee.path = arena.string(file.path)
                entry.pointee.size = file.size
                array[index] = entry
            }
            message.n_files = files.count
            message.files = array
            message.source = source
        }
    }
}

/// `omx.migrator.TransferChunk`: one piece of one image file, with its CRC-32.
public struct TransferChunk: WireMessage, Equatable {
    public var transfer: String
    /// Index into `TransferBegin.files`.
    public var file: UInt32
    public var offset: UInt64
    public var data: [UInt8]
    public var crc32: UInt32

    public init(transfer: String, file: UInt32, offset: UInt64, data: [UInt8], crc32: UInt32) {
        self.transfer = transfer
        self.file = file
        self.offset = offset
        self.data = data
        self.crc32 = crc32
    }

    static let codec = ProtoCodec<Omx__Migrator__TransferChunk>(
        name: "omx.migrator.TransferChunk", initialize: { omx__migrator__transfer_chunk__init($0) },
        packedSize: { omx__migrator__transfer_chunk__get_packed_size($0) }, pack: { omx__migrator__transfer_chunk__pack($0, $1) },
        unpack: { omx__migrator__transfer_chunk__unpack($0, $1, $2) }, free: { omx__migrator__transfer_chunk__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try TransferChunk.decode(bytes) { header, data in
            TransferChunk(transfer: header.transfer, file: header.file, offset: header.offset, data: Array(data), crc32: header.crc32)
        }
    }

    public func wire() -> [UInt8] {
        data.withUnsafeBytes { TransferChunk.encode(transfer: transfer, file: file, offset: offset, data: $0, crc32: crc32) }
    }

    /// A chunk's fields but its data.
    public struct Header: Sendable {
        public let transfer: String
        public let file: UInt32
        public let offset: UInt64
        public let crc32: UInt32
    }

    /// The serialized chunk, its data packed straight from `data` (no intermediate copy).
    public static func encode(transfer: String, file: UInt32, offset: UInt64, data: UnsafeRawBufferPointer, crc32: UInt32) -> [UInt8] {
        codec.encode { message, arena in
            message.transfer = arena.string(transfer)
            message.file = file
            message.offset = offset
            message.data = ProtobufCBinaryData(len: data.count, data: UnsafeMutablePointer(mutating: data.baseAddress?.assumingMemoryBound(to: UInt8.self)))
            message.crc32 = crc32
        }
    }

    /// Parses a chunk and hands its data to `read` in place, valid only during the call.
    /// - Throws: `RPCError` INVALID_ARGUMENT when the bytes are no TransferChunk.
    public static func decode<T>(_ bytes: [UInt8], _ read: (Header, UnsafeRawBufferPointer) throws -> T) throws -> T {
        try codec.decode(bytes) { message in
            let header = Header(transfer: cString(message.transfer), file: message.file, offset: message.offset, crc32: message.crc32)
            return try read(header, UnsafeRawBufferPointer(start: message.data.data, count: message.data.len))
        }
    }
}

/// A message already serialized, sent as is.
public struct PackedMessage: WireMessage {
    public let bytes: [UInt8]

    public init(wire bytes: [UInt8]) { self.bytes = bytes }
    public func wire() -> [UInt8] { bytes }
}

/// `omx.migrator.TransferRef`: names a migration for Restore, Commit, Abort and Outcome.
public struct TransferRef: WireMessage, Equatable {
    public var transfer: String
    /// With Commit: what the migration took.
    public var report: MigrationReport?

    public init(transfer: String, report: MigrationReport? = nil) {
        self.transfer = transfer
        self.report = report
    }

    static let codec = ProtoCodec<Omx__Migrator__TransferRef>(
        name: "omx.migrator.TransferRef", initialize: { omx__migrator__transfer_ref__init($0) },
        packedSize: { omx__migrator__transfer_ref__get_packed_size($0) }, pack: { omx__migrator__transfer_ref__pack($0, $1) },
        unpack: { omx__migrator__transfer_ref__unpack($0, $1, $2) }, free: { omx__migrator__transfer_ref__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try TransferRef.codec.decode(bytes) { TransferRef(transfer: cString($0.transfer), report: $0.report.map { MigrationReport(wire: $0.pointee) }) }
    }

    public func wire() -> [UInt8] {
        TransferRef.codec.encode { message, arena in
            message.transfer = arena.string(transfer)
            message.report = report?.wire(in: arena)
        }
    }
}

/// `omx.migrator.RestoreResponse`: the restored job's init, stopped until Commit.
public struct RestoreResponse: WireMessage, Equatable {
    public var pid: Int32
    public var pidStartTicks: UInt64

    public init(pid: Int32, pidStartTicks: UInt64) {
        self.pid = pid
        self.pidStartTicks = pidStartTicks
    }

    static let codec = ProtoCodec<Omx__Migrator__RestoreResponse>(
        name: "omx.migrator.RestoreResponse", initialize: { omx__migrator__restore_response__init($0) },
        packedSize: { omx__migrator__restore_response__get_packed_size($0) }, pack: { omx__migrator__restore_response__pack($0, $1) },
        unpack: { omx__migrator__restore_response__unpack($0, $1, $2) }, free: { omx__migrator__restore_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try RestoreResponse.codec.decode(bytes) { RestoreResponse(pid: $0.pid, pidStartTicks: $0.pid_start_ticks) }
    }

    public func wire() -> [UInt8] {
        RestoreResponse.codec.encode { message, _ in
            message.pid = pid
            message.pid_start_ticks = pidStartTicks
        }
    }
}

/// What the source of a migration decided (`omx.migrator.Outcome`).
public enum TransferOutcome: Sendable, Equatable {
    case undecided, committed, aborted
}

/// `omx.migrator.OutcomeResponse`.
public struct OutcomeResponse: WireMessage, Equatable {
    public var outcome: TransferOutcome

    public init(outcome: TransferOutcome) { self.outcome = outcome }

    static let codec = ProtoCodec<Omx__Migrator__OutcomeResponse>(
        name: "omx.migrator.OutcomeResponse", initialize: { omx__migrator__outcome_response__init($0) },
        packedSize: { omx__migrator__outcome_response__get_packed_size($0) }, pack: { omx__migrator__outcome_response__pack($0, $1) },
        unpack: { omx__migrator__outcome_response__unpack($0, $1, $2) }, free: { omx__migrator__outcome_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try OutcomeResponse.codec.decode(bytes) { message in
            switch message.outcome {
            case OMX__MIGRATOR__OUTCOME__COMMITTED: return OutcomeResponse(outcome: .committed)
            case OMX__MIGRATOR__OUTCOME__ABORTED: return OutcomeResponse(outcome: .aborted)
            default: return OutcomeResponse(outcome: .undecided)
            }
        }
    }

    public func wire() -> [UInt8] {
        OutcomeResponse.codec.encode { message, _ in
            switch outcome {
            case .undecided: message.outcome = OMX__MIGRATOR__OUTCOME__UNDECIDED
            case .committed: message.outcome = OMX__MIGRATOR__OUTCOME__COMMITTED
            case .aborted: message.outcome = OMX__MIGRATOR__OUTCOME__ABORTED
            }
        }
    }
}
