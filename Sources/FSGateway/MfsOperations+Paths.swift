import CFuse
import Glibc
import Shared

/// Which path a /mfs call is about, and the calls that take their paths alone.
extension MfsOperations {
    /// A path from the kernel in wire form (`WireFileName`).
    static func path(_ raw: UnsafePointer<CChar>?) -> String { raw.map { WireFileName.decode(cString: $0) } ?? "/" }

    /// The path a call is about: the kernel's, or, for a call on an open file or directory
    /// (which libfuse makes without one: nullpath_ok), where it was opened; nil for neither.
    static func path(_ raw: UnsafePointer<CChar>?, _ info: UnsafeMutablePointer<fuse_file_info>?) -> String? {
        if let raw { return WireFileName.decode(cString: raw) }
        guard let id = info?.pointee.fh else { return nil }
        if let open = mount.file(id) { return "\(open.node)/\(open.path)" }
        return mount.directories.path(id)
    }

    /// `body` for a path on a node; EROFS for the mount's own entries, ENOENT for others.
    static func onNode(_ raw: UnsafePointer<CChar>?, _ info: UnsafeMutablePointer<fuse_file_info>? = nil, _ body: (UInt32, String) -> Int32) -> Int32 {
        guard let path = MfsOperations.path(raw, info) else { return -EBADF }
        switch MfsOperations.mount.place(path) {
        case let .node(node, rest): return rest.isEmpty ? -EACCES : body(node, rest)
        case .root, .magic: return -EROFS
        case .missing: return -ENOENT
        }
    }

    /// rename and link: both paths on one node (EXDEV otherwise, as across file systems);
    /// `cached` updates the mount's cache once the call succeeded.
    static func twoPaths(
        _ from: UnsafePointer<CChar>?, _ to: UnsafePointer<CChar>?, _ method: String, _ fill: (inout FsRequest) -> Void,
        cached: (UInt32, FsRequest, FsResponse) -> Void
    ) -> Int32 {
        guard case let .node(source, old) = MfsOperations.mount.place(MfsOperations.path(from)), !old.isEmpty else { return -EACCES }
        guard case let .node(target, new) = MfsOperations.mount.place(MfsOperations.path(to)), !new.isEmpty else { return -EACCES }
        guard source == target else { return -EXDEV }
        var request = MfsOperations.mount.request(old)
        request.path2 = new
        fill(&request)
        let (code, answer) = MfsOperations.mount.call(source, method, request, retry: false)
        if code == 0 { cached(source, request, answer) }
        return code
    }

    /// unlink and rmdir.
    static func remove(_ raw: UnsafePointer<CChar>?, _ method: String) -> Int32 {
        MfsOperations.onNode(raw) { node, rest in
            let code = MfsOperations.mount.call(node, method, MfsOperations.mount.request(rest), retry: false).0
            guard code == 0 else { return code }
            MfsOperations.mount.cache.removed(node, rest, directory: method == "Rmdir")
            // The file's other names have one link less.
            MfsOperations.mount.invalidate(node, MfsOperations.mount.hardLinks.removed(node, rest))
            return code
        }
    }
}
