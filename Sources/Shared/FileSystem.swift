import Glibc

/// The names in directory `path` (without "." and ".."), in the wire form of file names
/// (`WireFileName`: a name that is no UTF-8 keeps its bytes).
/// - Throws: `ConfigError` naming the directory.
public func listDirectory(_ path: String) throws -> [String] {
    guard let directory = opendir(WireFileName.cString(path)) else { throw ConfigError("\(path): \(String(cString: strerror(errno)))") }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { WireFileName.decode($0.prefix(while: { $0 != 0 })) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes `path` and everything beneath it on `path`'s own file system, as `rm -rf
/// --one-file-system` does: symbolic links are removed, not followed, and a directory another
/// file system is mounted on is left alone with all it holds (a local cluster's /mfs mount
/// shows every node's whole tree: removing through it would empty the machine).
/// - Returns: whether everything is gone (false when a mount point, or what could not be
///   removed, is left).
@discardableResult
public func removeTree(_ path: String) -> Bool {
    var info = stat()
    guard lstat(WireFileName.cString(path), &info) == 0 else { return errno == ENOENT }
    guard (info.st_mode & S_IFMT) == S_IFDIR else { return unlink(WireFileName.cString(path)) == 0 }
    // Mount points are told by the mount table as well as by their device (a bind mount of
    // the same file system has the same one), under the path as the table names it.
    let canonical = canonicalPath(path)
    let mounted = Set(MountInfo.mountPoints(atOrBeneath: canonical))
    guard !mounted.contains(canonical) else { return false }
    return removeDirectory(canonical, device: info.st_dev, leaving: mounted)
}

/// Empties and removes directory `path` (wire form, like every path here) of file system
/// `device`, leaving other file systems and the mount points in `mounted` alone.
private func removeDirectory(_ path: String, device: dev_t, leaving mounted: Set<String>) -> Bool {
    var complete = true
    for name in (try? listDirectory(path)) ?? [] {
        let child = "\(path)/\(name)"
        let bytes = WireFileName.cString(child)
        var info = stat()
        guard lstat(bytes, &info) == 0 else {
            complete = false  // a dead FUSE mount, say: not this file system's to remove
            continue
        }
        if (info.st_mode & S_IFMT) != S_IFDIR {
            complete = unlink(bytes) == 0 && complete
        } else if info.st_dev == device && !mounted.contains(where: { $0.utf8.elementsEqual(child.utf8) }) {
            complete = removeDirectory(child, device: device, leaving: mounted) && complete
        } else {
            complete = false
        }
    }
    return rmdir(WireFileName.cString(path)) == 0 && complete
}

/// `path` absolute, without symlinks, "." or ".." (realpath), or as it is when it does not resolve.
public func canonicalPath(_ path: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    return realpath(WireFileName.cString(path), &buffer) != nil ? WireFileName.decode(cString: buffer) : path
}
