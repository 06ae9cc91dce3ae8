/// One frame on its way out of a connection (length prefix and envelope, packed in place and
/// never copied again), in one allocation with the object that owns it: libuv points at the
/// bytes until the write completes, and they stay where they are as long as a copy of this
/// value lives. Immutable once packed, so it may cross threads.
public struct OutgoingBytes: @unchecked Sendable {
    /// The frame's storage; its header is the number of bytes in the frame.
    private final class Storage: ManagedBuffer<Int, UInt8> {}

    private let storage: Storage

    /// Where the frame's bytes begin.
    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(storage.withUnsafeMutablePointerToElements { $0 }) }
    /// Bytes in the frame.
    var count: Int { storage.header }

    /// A frame whose payload `fill` packs in place: `fill` gets where the payload goes and
    /// returns how many bytes it wrote (at most `payloadSize`).
    static func frame(payloadSize: Int, _ fill: (UnsafeMutablePointer<UInt8>) -> Int) -> OutgoingBytes {
        let storage = unsafeDowncast(Storage.create(minimumCapacity: Frame.headerSize + payloadSize) { _ in 0 }, to: Storage.self)
        storage.withUnsafeMutablePointers { count, bytes in
            let written = payloadSize == 0 ? 0 : fill(bytes + Frame.headerSize)
            UnsafeMutableRawPointer(bytes).storeBytes(of: UInt32(written).bigEndian, as: UInt32.self)
            count.pointee = Frame.headerSize + written
        }
        return OutgoingBytes(storage: storage)
    }

    /// The frame's bytes, for reading.
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
        storage.withUnsafeMutablePointers { count, bytes in body(UnsafeRawBufferPointer(start: bytes, count: count.pointee)) }
    }
}
