/// Paths compared and split by their bytes. Swift compares and splits strings by characters
/// (a "/" followed by a combining mark is one character, "é" equals "e" + U+0301), while the
/// kernel reads bytes: every check of where a path leads must read it as the kernel does.
extension String {
    /// The names between the "/" bytes of this path.
    var pathNames: [String] {
        utf8.split(separator: UInt8(ascii: "/")).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether this path is `other`, byte for byte.
    func isSamePath(as other: String) -> Bool {
        utf8.elementsEqual(other.utf8)
    }

    /// Whether this path is `other` or lies beneath it, byte for byte.
    func isPath(atOrBeneath other: String) -> Bool {
        guard utf8.starts(with: other.utf8) else { return false }
        let rest = utf8.dropFirst(other.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/") || other.utf8.last == UInt8(ascii: "/")
    }
}

/// A path as a dictionary key or set member, equal only to the same bytes: a `String` key
/// takes "café" written with U+00E9 and with "e" + U+0301 for one name, and would give one
/// file's cached attributes for the other.
struct PathKey: Hashable, Sendable {
    let path: String

    init(_ path: String) { self.path = path }

    static func == (lhs: PathKey, rhs: PathKey) -> Bool { lhs.path.isSamePath(as: rhs.path) }

    func hash(into hasher: inout Hasher) {
        let hashed: Void? = path.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil { for byte in path.utf8 { hasher.combine(byte) } }
    }
}
