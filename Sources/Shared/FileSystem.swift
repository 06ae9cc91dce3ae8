import Glibc

/// The names in directory `path` (without "." and "..").
/// - Throws: `ConfigError` naming the directory.
public func listDirectory(_ path: String) throws -> [String] {
    guard let directory = opendir(path) else { throw ConfigError("\(path): \(String(cString: strerror(errno)))") }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes `path` and everything beneath it (symbolic links are removed, not followed).
public func removeTree(_ path: String) {
    for name in (try? listDirectory(path)) ?? [] {
        let child = "\(path)/\(name)"
        var info = stat()
        if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
    }
    rmdir(path)
}
