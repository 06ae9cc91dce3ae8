/// Cuts a byte stream into frames, however the reads split or join them.
///
/// Feed every read to `append(_:)`, then call `next()` until it returns nil.
public struct FrameDecoder {
    /// Frames longer than this are refused with `FrameError.oversize`.
    public let maxFrameSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    /// - Parameter maxFrameSize: the largest payload accepted, in bytes.
    public init(maxFrameSize: Int = Frame.defaultMaxSize) {
        self.maxFrameSize = maxFrameSize
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedCount: Int { buffer.count - readIndex }

    /// Adds bytes that arrived on the stream.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if readIndex > 0 && readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex > 65536 && readIndex * 2 > buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Adds bytes that arrived on the stream.
    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Returns the next complete frame's payload, or nil when more bytes are needed.
    /// - Throws: `FrameError.oversize` when the next frame announces more than `maxFrameSize`
    ///   bytes; the stream cannot be resynchronised after that.
    public mutating func next() throws -> [UInt8]? {
        let available = buffer.count - readIndex
        guard available >= Frame.headerSize else { return nil }
        let length = buffer.withUnsafeBufferPointer { bytes -> Int in
            let base = readIndex
            return Int(bytes[base]) << 24 | Int(bytes[base + 1]) << 16 | Int(bytes[base + 2]) << 8 | Int(bytes[base + 3])
        }
        guard length <= maxFrameSize else { throw FrameError.oversize(length: length, limit: maxFrameSize) }
        guard available >= Frame.headerSize + length else { return nil }
        let start = readIndex + Frame.headerSize
        let payload = Array(buffer[start..<start + length])
        readIndex = start + length
        return payload
    }
}
