/// The framing every OMX connection uses: a 4-byte big-endian length, then that many bytes
/// holding one serialized `Envelope`.
public enum Frame {
    /// Bytes in the length prefix.
    public static let headerSize = 4
    /// The largest frame a service accepts unless configured otherwise (16 MiB).
    public static let defaultMaxSize = 16 << 20

    /// Appends `payload` to `buffer` as one frame.
    public static func append(_ payload: [UInt8], to buffer: inout [UInt8]) {
        let length = UInt32(payload.count)
        buffer.append(UInt8(truncatingIfNeeded: length >> 24))
        buffer.append(UInt8(truncatingIfNeeded: length >> 16))
        buffer.append(UInt8(truncatingIfNeeded: length >> 8))
        buffer.append(UInt8(truncatingIfNeeded: length))
        buffer.append(contentsOf: payload)
    }

    /// Returns `payload` as one frame.
    public static func encode(_ payload: [UInt8]) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(headerSize + payload.count)
        append(payload, to: &buffer)
        return buffer
    }
}

/// Why a byte stream cannot be cut into frames.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    /// A frame announced `length` bytes, more than the configured `limit`.
    case oversize(length: Int, limit: Int)

    public var description: String {
        switch self {
        case let .oversize(length, limit):
            return "frame of \(length) bytes exceeds the maximum frame size of \(limit) bytes"
        }
    }
}
