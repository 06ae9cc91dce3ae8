import Glibc

/// File names and paths on the wire, and a job's arguments, environment and directory. Linux
/// takes them as bytes, but the contract's `string` fields hold UTF-8 (and most languages'
/// protobuf libraries refuse anything else), so they travel in a reversible form:
/// - valid UTF-8 travels as it is;
/// - every byte that is not part of valid UTF-8 travels as the character U+EF00 + byte (bytes
///   0x80-0xFF become U+EF80-U+EFFF, private-use characters);
/// - so that the form stays reversible, a name's own U+EF80-U+EFFF characters travel byte by
///   byte the same way.
///
/// Reading a wire name back to bytes: each U+EF80-U+EFFF character is the byte (character -
/// 0xEF00), every other character its UTF-8. Names that are valid UTF-8 without such characters
/// (nearly all) are the same in both forms.
public enum WireFileName {
    public static let escapes: ClosedRange<UInt32> = 0xEF80...0xEFFF

    /// The wire form of the name or path `bytes`.
    public static func decode(_ bytes: some Collection<UInt8>) -> String {
        if !mayNeedEscapes(bytes), let plain = String(validating: bytes, as: UTF8.self) { return plain }
        let bytes = Array(bytes)
        var scalars = String.UnicodeScalarView()
        func escape(_ byte: UInt8) { scalars.append(Unicode.Scalar(0xEF00 + UInt32(byte))!) }
        var start = 0
        while start < bytes.count {
            // A parser of its own for each scalar: it may read ahead, and nothing read ahead is lost.
            var parser = Unicode.UTF8.ForwardParser()
            var input = bytes[start...].makeIterator()
            switch parser.parseScalar(from: &input) {
            case let .valid(encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                if escapes.contains(scalar.value) { encoded.forEach(escape) } else { scalars.append(scalar) }
                start += encoded.count
            case let .error(length):
                bytes[start..<start + length].forEach(escape)
                start += length
            case .emptyInput:
                start = bytes.count
            }
        }
        return String(scalars)
    }

    /// The bytes of wire name or path `name`, NUL-terminated for the C calls that take them.
    public static func cString(_ name: String) -> [CChar] {
        bytes(name).map { CChar(bitPattern: $0) } + [0]
    }

    /// The bytes of wire name or path `name`.
    public static func bytes(_ name: String) -> [UInt8] {
        if !mayNeedEscapes(name.utf8) { return Array(name.utf8) }
        var bytes: [UInt8] = []
        for scalar in name.unicodeScalars {
            if escapes.contains(scalar.value) {
                bytes.append(UInt8(scalar.value - 0xEF00))
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes
    }

    /// Whether `name` is a wire name as `decode` makes them: no NUL (which would cut it short
    /// for the kernel), and no escape standing for bytes that travel as they are (two wire
    /// names for one name would let a check of one miss the other).
    public static func isCanonical(_ name: String) -> Bool {
        if name.utf8.contains(0) { return false }
        return !mayNeedEscapes(name.utf8) || decode(bytes(name)).utf8.elementsEqual(name.utf8)
    }

    /// The wire form of a NUL-terminated name from the kernel.
    public static func decode(cString: UnsafePointer<CChar>) -> String {
        decode(UnsafeRawBufferPointer(start: cString, count: strlen(cString)))
    }

    /// Whether `bytes` may hold the UTF-8 of U+EF80-U+EFFF (which begins EE BE or EE BF).
    private static func mayNeedEscapes(_ bytes: some Collection<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for byte in bytes {
            if previous == 0xEE && (byte == 0xBE || byte == 0xBF) { return true }
            previous = byte
        }
        return false
    }
}
