import OMXProto
import Glibc

/// Packs and unpacks one protoc-c generated message type `C`, given its generated functions.
/// Swift never touches protobuf-c beyond this file and the message files that use it.
public struct ProtoCodec<C> {
    let name: String
    let initialize: (UnsafeMutablePointer<C>) -> Void
    let packedSize: (UnsafePointer<C>) -> Int
    let pack: (UnsafePointer<C>, UnsafeMutablePointer<UInt8>) -> Int
    let unpack: (UnsafeMutablePointer<ProtobufCAllocator>, Int, UnsafePointer<UInt8>) -> UnsafeMutablePointer<C>?
    let free: (UnsafeMutablePointer<C>, UnsafeMutablePointer<ProtobufCAllocator>) -> Void

    /// A codec from the generated functions of one message type.
    public init(
        name: String, initialize: @escaping (UnsafeMutablePointer<C>) -> Void, packedSize: @escaping (UnsafePointer<C>) -> Int,
        pack: @escaping (UnsafePointer<C>, UnsafeMutablePointer<UInt8>) -> Int,
        unpack: @escaping (UnsafeMutablePointer<ProtobufCAllocator>, Int, UnsafePointer<UInt8>) -> UnsafeMutablePointer<C>?,
        free: @escaping (UnsafeMutablePointer<C>, UnsafeMutablePointer<ProtobufCAllocator>) -> Void
    ) {
        self.name = name
        self.initialize = initialize
        self.packedSize = packedSize
        self.pack = pack
        self.unpack = unpack
        self.free = free
    }

    /// Builds a message with `fill` and returns its serialized bytes.
    public func encode(_ fill: (inout C, CArena) -> Void) -> [UInt8] {
        let arena = CArena()
        let message = arena.message(self)
        fill(&message.pointee, arena)
        let size = packedSize(message)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = size == 0 ? 0 : pack(message, buffer.baseAddress!)
        }
    }

    /// Builds a message with `fill` and returns it as one frame, packed in place.
    func encodeFrame(_ fill: (inout C, CArena) -> Void) -> OutgoingBytes {
        let arena = CArena()
        let message = arena.message(self)
        fill(&message.pointee, arena)
        return OutgoingBytes.frame(payloadSize: packedSize(message)) { pack(message, $0) }
    }

    /// Parses `bytes` and hands the C message to `read` while it is alive.
    /// - Throws: `RPCError` with status INVALID_ARGUMENT naming the message when the bytes do
    ///   not parse.
    public func decode<T>(_ bytes: [UInt8], _ read: (C) throws -> T) throws -> T {
        try bytes.withUnsafeBytes { try decode($0, read) }
    }

    /// Parses `bytes` and hands the C message to `read` while it is alive. The message lives in
    /// a scratch area on the stack (protobuf-c allocates nothing on the heap for it unless it
    /// is larger than that: an envelope with a body of up to about 600 bytes fits), so `read`
    /// must copy what it keeps.
    /// - Throws: `RPCError` with status INVALID_ARGUMENT naming the message when the bytes do
    ///   not parse.
    public func decode<T>(_ bytes: UnsafeRawBufferPointer, _ read: (C) throws -> T) throws -> T {
        try withUnsafeTemporaryAllocation(byteCount: ScratchAllocator.capacity, alignment: 16) { scratch in
            var state = ScratchAllocator(scratch)
            return try withUnsafeMutablePointer(to: &state) { state in
                var allocator = ProtobufCAllocator(alloc: ScratchAllocator.alloc, free: ScratchAllocator.free, allocator_data: state)
                // An empty message still needs a valid pointer (protobuf-c reads none of it).
                let data = UnsafePointer((bytes.baseAddress ?? UnsafeRawPointer(scratch.baseAddress!)).assumingMemoryBound(to: UInt8.self))
                let parsed = withUnsafeMutablePointer(to: &allocator) { unpack($0, bytes.count, data) }
                guard let parsed else {
                    throw RPCError(.invalidArgument, "malformed \(name) (\(bytes.count) bytes)")
                }
                defer { withUnsafeMutablePointer(to: &allocator) { free(parsed, $0) } }
                return try read(parsed.pointee)
            }
        }
    }
}

/// The memory protobuf-c unpacks one message into: bump allocation from a scratch area on the
/// stack, falling back to malloc for what does not fit. Freeing inside the area does nothing;
/// the whole area goes when the decode returns.
private struct ScratchAllocator {
    /// At most what Swift places on the stack for `withUnsafeTemporaryAllocation`: a larger
    /// area comes from the heap (posix_memalign), on every decode.
    static let capacity = 1024
    let base: UnsafeMutableRawPointer
    var used = 0

    init(_ area: UnsafeMutableRawBufferPointer) {
        base = area.baseAddress!
    }

    static let alloc: @convention(c) (UnsafeMutableRawPointer?, Int) -> UnsafeMutableRawPointer? = { data, size in
        let state = data!.assumingMemoryBound(to: ScratchAllocator.self)
        let start = (state.pointee.used + 15) & ~15
        guard start + size <= capacity else { return malloc(max(size, 1)) }
        state.pointee.used = start + size
        return state.pointee.base + start
    }

    static let free: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { data, pointer in
        guard let pointer else { return }
        let base = data!.assumingMemoryBound(to: ScratchAllocator.self).pointee.base
        if pointer < base || pointer >= base + capacity { Glibc.free(pointer) }
    }
}

/// Memory for C messages being built: strings, byte buffers and nested messages, all freed
/// together when the arena goes away.
public final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for pointer in allocations { Glibc.free(pointer) }
    }

    /// A NUL-terminated copy of `string`.
    public func string(_ string: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(string)!
        allocations.append(copy)
        return copy
    }

    /// A copy of `bytes` as protobuf-c binary data.
    public func bytes(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        guard !bytes.isEmpty else { return ProtobufCBinaryData(len: 0, data: nil) }
        let copy = malloc(bytes.count)!
        allocations.append(copy)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return ProtobufCBinaryData(len: bytes.count, data: copy.assumingMemoryBound(to: UInt8.self))
    }

    /// A new, initialised message of the codec's type.
    public func message<C>(_ codec: ProtoCodec<C>) -> UnsafeMutablePointer<C> {
        let raw = calloc(1, MemoryLayout<C>.stride)!
        allocations.append(raw)
        let message = raw.assumingMemoryBound(to: C.self)
        codec.initialize(message)
        return message
    }

    /// A C array of `count` elements of `T`, for repeated fields.
    public func array<T>(of type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.assumingMemoryBound(to: T.self)
    }

    /// A C copy of `values`, for repeated scalar fields (pair it with `n_<field> = values.count`).
    public func values<T: BitwiseCopyable>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let array = array(of: T.self, count: values.count)
        for (index, value) in values.enumerated() { array[index] = value }
        return array
    }

    /// A C array of strings, for repeated string fields.
    public func strings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = array(of: UnsafeMutablePointer<CChar>?.self, count: values.count)
        for (index, value) in values.enumerated() { array[index] = string(value) }
        return array
    }
}

/// Reads a protobuf-c string field.
public func cString(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

/// Reads a protobuf-c bytes field.
public func cBytes(_ data: ProtobufCBinaryData) -> [UInt8] {
    guard data.len > 0, let base = data.data else { return [] }
    return Array(UnsafeBufferPointer(start: base, count: data.len))
}

/// Reads a protobuf-c repeated scalar field.
public func cValues<T>(_ count: Int, _ values: UnsafeMutablePointer<T>?) -> [T] {
    guard count > 0, let values else { return [] }
    return Array(UnsafeBufferPointer(start: values, count: count))
}

/// Reads a protobuf-c repeated string field.
public func cStrings(_ count: Int, _ values: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
    guard count > 0, let values else { return [] }
    return (0..<count).map { cString(values[$0]) }
}
