import Glibc

/// The whole text of the file at `path`.
/// - Throws: `ConfigError` naming the path and the system's reason.
public func readTextFile(_ path: String) throws -> String {
    String(decoding: try readFileBytes(path), as: UTF8.self)
}

/// The bytes of the file at `path`.
/// - Throws: `ConfigError` naming the path and the system's reason.
public func readFileBytes(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "r") else {
        throw ConfigError("\(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
        if count < chunk.count {
            if ferror(file) != 0 { throw ConfigError("\(path): \(String(cString: strerror(errno)))") }
            break
        }
    }
    return bytes
}

/// True when something exists at `path`.
public func fileExists(_ path: String) -> Bool {
    access(path, F_OK) == 0
}

extension StringProtocol {
    /// The string without leading and trailing spaces, tabs and line breaks.
    public var trimmedWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}

/// Writes `text` to `path`, replacing the file.
/// - Throws: `ConfigError` naming the path.
public func writeTextFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
    try writeFileBytes(path, Array(text.utf8), mode: mode)
}

/// Writes `bytes` to `path`, replacing the file (created with `mode`).
/// - Throws: `ConfigError` naming the path.
public func writeFileBytes(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw ConfigError("\(path): cannot write: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard write(fd, bytes, bytes.count) == bytes.count else {
        throw ConfigError("\(path): cannot write: \(String(cString: strerror(errno)))")
    }
}
