/// What an envelope's MAC covers, exactly as `proto/README.md` specifies it: the receiver's
/// address, then every field but the MAC itself, in a fixed order, integers big-endian, strings
/// and bytes length-prefixed, the body last. The part before the body (the head) is written on
/// the stack and the body is never copied to be signed.
extension Envelope {
    /// The whole signing string (head and body) for receiver `destination` ("IPv4:port"), for
    /// tests and the documented test vector.
    public func signingBytes(to destination: String) -> [UInt8] {
        withSigningHead(to: destination) { Array($0) } + body
    }

    /// Hands `body` the signing string of this envelope up to the body, with its own `auth`.
    func withSigningHead<T>(to destination: String, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try (auth?.nonce ?? []).withUnsafeBytes { nonce in
            try withFields { fields in
                try fields.withSigningHead(to: destination, nodeID: auth?.nodeID ?? 0, timestampMs: auth?.timestampMs ?? 0, nonce: nonce, body)
            }
        }
    }
}

/// The signed fields of an envelope that come before its body, wherever they lie.
struct SigningHead {
    /// The receiver's "IPv4:port", as the sender reached it.
    var destination: UnsafeRawBufferPointer
    var callID: UInt64
    var kind: UInt32
    var method: UnsafeRawBufferPointer
    var status: UInt32
    var error: UnsafeRawBufferPointer
    var deadlineMs: UInt32
    var nodeID: UInt32
    var timestampMs: UInt64
    var nonce: UnsafeRawBufferPointer
    var bodyCount: Int

    /// Hands `body` the head's bytes, written on the stack.
    func withBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let size = 56 + destination.count + method.count + error.count + nonce.count
        return try withUnsafeTemporaryAllocation(byteCount: size, alignment: 8) { buffer in
            var writer = Writer(buffer: buffer)
            writer.u32(0x4F4D_5832)  // "OMX2"
            writer.field(destination)
            writer.u64(callID)
            writer.u32(kind)
            writer.field(method)
            writer.u32(status)
            writer.field(error)
            writer.u32(deadlineMs)
            writer.u32(nodeID)
            writer.u64(timestampMs)
            writer.field(nonce)
            writer.u32(UInt32(bodyCount))
            precondition(writer.offset == size, "signing head of \(writer.offset) bytes, sized for \(size)")
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }

    /// Writes the parts one after the other into a buffer sized for them.
    private struct Writer {
        let buffer: UnsafeMutableRawBufferPointer
        var offset = 0

        mutating func u32(_ value: UInt32) {
            buffer.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }

        mutating func u64(_ value: UInt64) {
            buffer.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
            offset += 8
        }

        /// A length-prefixed field.
        mutating func field(_ bytes: UnsafeRawBufferPointer) {
            u32(UInt32(bytes.count))
            if let source = bytes.baseAddress { (buffer.baseAddress! + offset).copyMemory(from: source, byteCount: bytes.count) }
            offset += bytes.count
        }
    }
}
