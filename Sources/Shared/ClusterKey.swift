import COpenSSL
import Glibc

/// The secret every node of a cluster shares: 32 random bytes, stored as 64 hex digits in a
/// file readable only by its owner.
public struct ClusterKey: Sendable, Equatable {
    /// Bytes in a key.
    public static let size = 32
    /// Where services and the CLI look for the key unless told otherwise.
    public static let defaultPath = "/etc/omx/cluster.key"

    public let bytes: [UInt8]
    /// The HMAC states after the key's pads, computed once.
    private let prepared: COpenSSL_hmac_key

    /// A key from `bytes`. - Precondition: `bytes.count == ClusterKey.size`.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == ClusterKey.size)
        self.bytes = bytes
        var prepared = COpenSSL_hmac_key()
        precondition(COpenSSL_hmac_prepare(&prepared, bytes, bytes.count) == 1, "HMAC-SHA256 key setup failed in libcrypto")
        self.prepared = prepared
    }

    public static func == (a: ClusterKey, b: ClusterKey) -> Bool { a.bytes == b.bytes }

    /// A fresh random key.
    public static func generate() -> ClusterKey {
        ClusterKey(bytes: randomBytes(size))
    }

    /// Reads a key file.
    /// - Throws: `ConfigError` naming the path when the file cannot be read, holds anything but
    ///   64 hex digits, or can be read by other users (its mode must be 0600 or stricter).
    public static func load(from path: String) throws -> ClusterKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ConfigError("\(path): cannot read the cluster key: \(String(cString: strerror(errno))) (create one with `omx keygen`)")
        }
        defer { close(fd) }
        // Checked on the file opened, not on whatever the path names a moment later.
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ConfigError("\(path): cannot read the cluster key: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw ConfigError("\(path): the cluster key is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)`")
        }
        var content = [UInt8](repeating: 0, count: 1_024)
        let count = read(fd, &content, content.count)
        guard count >= 0 else {
            throw ConfigError("\(path): cannot read the cluster key: \(String(cString: strerror(errno)))")
        }
        let text = String(decoding: content.prefix(count), as: UTF8.self).trimmedWhitespace
        guard text.utf8.count == size * 2 else {
            throw ConfigError("\(path):1: a cluster key is \(size * 2) hex digits, found \(text.utf8.count) characters")
        }
        guard let bytes = hexDecode(text) else {
            throw ConfigError("\(path):1: a cluster key is \(size * 2) hex digits, found characters that are not hex digits")
        }
        return ClusterKey(bytes: bytes)
    }

    /// Writes the key to `path` with mode 0600. A key replaced is written beside it and renamed
    /// over it once complete: no service reading it meanwhile sees half a key.
    /// - Parameter overwrite: replace an existing file; otherwise an existing file is an error.
    /// - Throws: `ConfigError` naming the path.
    public func write(to path: String, overwrite: Bool) throws {
        let target = overwrite ? "\(path).new-\(getpid())" : path
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = errno == EEXIST ? "file exists (pass --force to replace it)" : String(cString: strerror(errno))
            throw ConfigError("\(path): cannot write the cluster key: \(reason)")
        }
        let text = Array((hexEncode(bytes) + "\n").utf8)
        let written = Glibc.write(fd, text, text.count) == text.count && fchmod(fd, 0o600) == 0 && fsync(fd) == 0
        let failure = String(cString: strerror(errno))
        close(fd)
        guard written, !overwrite || rename(target, path) == 0 else {
            let reason = written ? String(cString: strerror(errno)) : failure
            unlink(target)
            throw ConfigError("\(path): cannot write the cluster key: \(reason)")
        }
    }

    /// HMAC-SHA256 of `data` under this key.
    public func mac(_ data: [UInt8]) -> [UInt8] {
        mac(data, followedBy: [])
    }

    /// HMAC-SHA256 of `head` followed by `tail` under this key, without joining them (a large
    /// body is never copied to be signed).
    public func mac(_ head: [UInt8], followedBy tail: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            head.withUnsafeBytes { head in tail.withUnsafeBytes { tail in mac(head, followedBy: tail, into: out.baseAddress!) } }
            count = 32
        }
    }

    /// HMAC-SHA256 of `head` followed by `tail` under this key, written to `out` (32 bytes).
    func mac(_ head: UnsafeRawBufferPointer, followedBy tail: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) {
        let ok = withUnsafePointer(to: prepared) { prepared in
            COpenSSL_hmac_sha256_prepared(
                prepared, head.baseAddress?.assumingMemoryBound(to: UInt8.self), head.count,
                tail.baseAddress?.assumingMemoryBound(to: UInt8.self), tail.count, out.assumingMemoryBound(to: UInt8.self))
        }
        precondition(ok == 1, "HMAC-SHA256 failed in libcrypto")
    }
}

/// `count` cryptographically strong random bytes.
public func randomBytes(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    precondition(COpenSSL_random_bytes(&out, count) == 1, "libcrypto has no randomness")
    return out
}

/// SHA-256 of `data`.
public func sha256(_ data: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    precondition(COpenSSL_sha256(data, data.count, &out) == 1, "SHA-256 failed in libcrypto")
    return out
}

/// Lower-case hex of `bytes`.
public func hexEncode(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The bytes of an even-length hex string, or nil when it is not one.
public func hexDecode(_ text: String) -> [UInt8]? {
    let chars = Array(text.utf8)
    guard chars.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    for index in stride(from: 0, to: chars.count, by: 2) {
        guard let high = nibble(chars[index]), let low = nibble(chars[index + 1]) else { return nil }
        out.append(high << 4 | low)
    }
    return out
}
