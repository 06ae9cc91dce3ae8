import Glibc

/// One frame on its way out of a connection (length prefix and envelope, packed in place and
/// never copied again), in memory of its own that libuv points at until the write completes.
public final class OutgoingBytes: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    /// Bytes in the frame.
    let count: Int

    private init(base: UnsafeMutableRawPointer, count: Int) {
        self.base = base
        self.count = count
    }

    deinit { free(base) }

    /// A frame whose payload `fill` packs in place: `fill` gets where the payload goes and
    /// returns how many bytes it wrote (at most `payloadSize`).
    static func frame(payloadSize: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Int) -> OutgoingBytes {
        let base = malloc(Frame.headerSize + payloadSize)!
        let start = base.assumingMemoryBound(to: UInt8.self)
        let written = payloadSize == 0 ? 0 : fill(start + Frame.headerSize)
        base.storeBytes(of: UInt32(written).bigEndian, as: UInt32.self)
        return OutgoingBytes(base: base, count: Frame.headerSize + written)
    }

    /// The frame's bytes, for reading.
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        body(UnsafeRawBufferPointer(start: base, count: count))
    }
}
