import Glibc

/// Bytes on their way out of a connection, in memory of their own that libuv points at until
/// the write completes: one whole frame packed in place (length prefix and envelope, never
/// copied again), or a gather buffer collecting small frames into one write.
public final class OutgoingBytes: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// Bytes filled so far.
    private(set) var count = 0
    /// Small frames may be appended (loop thread only); a packed frame is final.
    let gathers: Bool

    init(capacity: Int, gathers: Bool) {
        base = malloc(max(capacity, 1))!
        self.capacity = capacity
        self.gathers = gathers
    }

    deinit { free(base) }

    /// A frame whose payload `fill` packs in place: `fill` gets where the payload goes and
    /// returns how many bytes it wrote (at most `payloadSize`).
    static func frame(payloadSize: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Int) -> OutgoingBytes {
        let bytes = OutgoingBytes(capacity: Frame.headerSize + payloadSize, gathers: false)
        let start = bytes.base.assumingMemoryBound(to: UInt8.self)
        let written = payloadSize == 0 ? 0 : fill(start + Frame.headerSize)
        for index in 0..<Frame.headerSize { start[index] = UInt8(truncatingIfNeeded: UInt32(written) >> (24 - 8 * index)) }
        bytes.count = Frame.headerSize + written
        return bytes
    }

    /// Appends `other` when this is a gather buffer with room for it.
    func gather(_ other: UnsafeRawBufferPointer) -> Bool {
        guard gathers, count + other.count <= capacity else { return false }
        if let source = other.baseAddress { (base + count).copyMemory(from: source, byteCount: other.count) }
        count += other.count
        return true
    }

    /// The filled bytes, for reading.
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        body(UnsafeRawBufferPointer(start: base, count: count))
    }
}
