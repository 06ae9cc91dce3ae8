/// Cuts a byte stream into frames, however the reads split or join them.
///
/// Feed every read to `feed(_:_:)`: whole frames inside the read are handed over where they
/// lie, and only a frame split across reads is copied (into the decoder's buffer) until its
/// last byte arrives.
public struct FrameDecoder {
    /// Frames longer than this are refused with `FrameError.oversize`.
    public let maxFrameSize: Int
    /// The start of a frame whose rest has not arrived yet.
    private var partial: [UInt8] = []
    /// A partial frame buffer larger than this is released once its frame is complete.
    private static let keptCapacity = 1 << 20

    /// - Parameter maxFrameSize: the largest payload accepted, in bytes.
    public init(maxFrameSize: Int = Frame.defaultMaxSize) {
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedCount: Int { partial.count }

    /// Takes the bytes of one read and hands `deliver` each frame's payload that is now
    /// complete, in order. The payload is valid only during the call; `deliver` returns false
    /// to stop (the connection closed, or takes no more frames for now).
    /// - Returns: how many bytes of `bytes` were taken: all of them, unless `deliver` stopped;
    ///   the rest is the caller's to feed again or drop.
    /// - Throws: `FrameError.oversize` when a frame announces more than `maxFrameSize` bytes,
    ///   as soon as its length arrives; the stream cannot be resynchronised after that.
    @discardableResult
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ deliver: (UnsafeRawBufferPointer) -> Bool) throws -> Int {
        var input = bytes[...]
        if !partial.isEmpty {
            if partial.count < Frame.headerSize {
                let taken = input.prefix(Frame.headerSize - partial.count)
                partial.append(contentsOf: taken)
                input = input[taken.endIndex...]
                guard partial.count == Frame.headerSize else { return bytes.count }
            }
            let total = Frame.headerSize + (try partial.withUnsafeBytes { try announcedLength($0) })
            let taken = input.prefix(total - partial.count)
            partial.append(contentsOf: taken)
            input = input[taken.endIndex...]
            guard partial.count == total else { return bytes.count }
            let proceed = partial.withUnsafeBytes { deliver(UnsafeRawBufferPointer(rebasing: $0[Frame.headerSize...])) }
            partial.removeAll(keepingCapacity: partial.capacity <= FrameDecoder.keptCapacity)
            guard proceed else { return input.startIndex }
        }
        while input.count >= Frame.headerSize {
            let length = try announcedLength(UnsafeRawBufferPointer(rebasing: input))
            guard input.count >= Frame.headerSize + length else { break }
            let start = input.startIndex + Frame.headerSize
            guard deliver(UnsafeRawBufferPointer(rebasing: input[start..<start + length])) else { return start + length }
            input = input[(start + length)...]
        }
        partial.append(contentsOf: input)
        return bytes.count
    }

    /// The payload length in the header at the start of `bytes`, checked against the maximum.
    private func announcedLength(_ bytes: UnsafeRawBufferPointer) throws -> Int {
        let length = Int(UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self)))
        guard length <= maxFrameSize else { throw FrameError.oversize(length: length, limit: maxFrameSize) }
        return length
    }
}
