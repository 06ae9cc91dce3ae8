import CFuse
import Glibc
import Shared
import Synchronization

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
    /// `instead` may answer without the call (its code), `cached` updates the mount's cache
    /// once the call succeeded.
    static func twoPaths(
        _ from: UnsafePointer<CChar>?, _ to: UnsafePointer<CChar>?, _ method: String, _ fill: (inout FsRequest) -> Void,
        instead: (UInt32, FsRequest) -> Int32? = { _, _ in nil }, cached: (UInt32, FsRequest, FsResponse) -> Void
    ) -> Int32 {
        guard case let .node(source, old) = MfsOperations.mount.place(MfsOperations.path(from)), !old.isEmpty else { return -EACCES }
        guard case let .node(target, new) = MfsOperations.mount.place(MfsOperations.path(to)), !new.isEmpty else { return -EACCES }
        guard source == target else { return -EXDEV }
        var request = MfsOperations.mount.request(old)
        request.path2 = new
        fill(&request)
        if let code = instead(source, request) { return code }
        let (code, answer) = MfsOperations.mount.call(source, method, request, retry: false)
        if code == 0 { cached(source, request, answer) }
        return code
    }

    /// Makes the kernel look every name of the mount up again before its next use: after a
    /// lock is taken (names other nodes added or removed), and after a directory's mode or
    /// owner changed through the mount (the kernel checks no permission on a path it has
    /// cached, the gateway does at the lookup: a caller who may no longer search the directory
    /// must not reach what it cached beneath).
    static func expireNames() {
        let expired = omx_fuse_expire_names()
        if expired != 0 && !kernelKeepsNamesWarned.exchange(true, ordering: .relaxed) {
            mount.logger.warning("this kernel cannot be told to look names up again (\(String(cString: strerror(-expired))); Linux 6.16 has it): for up to the cache time after a lock is taken or a directory's permissions change, names may still look as they were")
        }
    }

    /// Whether the kernel refused to expire names once already (said once per mount).
    private static let kernelKeepsNamesWarned = Atomic<Bool>(false)

    /// The open file of the caller's user to answer a call on `rest` on `node` through, when
    /// the path is refused (EACCES: a directory on the way the caller may not search): fstat,
    /// fchmod, fchown and futimens reach the mount as calls on the file's path. Only for such a
    /// call (the caller's syscall says so, where it can be read): a call by path is refused, as
    /// on the disk.
    static func holdersFile(_ node: UInt32, _ rest: String, _ request: FsRequest) -> UInt64? {
        let byDescriptor = omx_fuse_caller_by_descriptor()
        if byDescriptor < 0 && !callersUnreadableWarned.exchange(true, ordering: .relaxed) {
            mount.logger.warning("the callers' system calls cannot be read (/proc/PID/syscall: the mount needs root or CAP_SYS_PTRACE): a user's open file answers its stat, chmod, chown and utime by path too where a directory on the way refuses the path")
        }
        guard byDescriptor != 0 else { return nil }
        return mount.heldOpen(node, rest, byUID: request.callerUID)
    }

    /// Whether reading a caller's system call failed once already (said once per mount).
    private static let callersUnreadableWarned = Atomic<Bool>(false)

    /// A mode, owner or times change (`method`) of `rest` on `node`, after the writes queued to
    /// the file. When the path is refused it is made again through the holder's file
    /// (`holdersFile`). Then the mount's cache forgets the file, the kernel its other names,
    /// and, for a `directory`, every name it holds (it checks no permission on a path it has
    /// cached; the mount's cache first, or a lookup in between would find the old permissions
    /// there). A `directory` of nil is told by the answer's attributes (a directory when it has
    /// none).
    static func changeAttributes(
        _ method: String, _ request: FsRequest, _ info: UnsafeMutablePointer<fuse_file_info>?, _ node: UInt32, _ rest: String, directory: Bool?
    ) -> Int32 {
        drainWrites(info, node, rest)
        let (pathCode, answer) = mount.call(node, method, request)
        var code = pathCode
        var holder: UInt64?
        if code == -EACCES, let id = holdersFile(node, rest, request), mount.callFile(id, method, caller: request, { _ in }).0 == 0 {
            code = 0
            holder = id
        }
        mount.cache.changed(node, rest)
        // The holder's file is known by its identity: its other names are found by it.
        if let holder { mount.changedThrough(handle: holder) } else { mount.changedThrough(info, node, rest) }
        // A holder's file is never a directory.
        if code == 0 && holder == nil && directory ?? answer.attr.map(\.isDirectory) ?? true { expireNames() }
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
