import CFuse
import Glibc
import Shared
import Synchronization

/// link(2) and rename(2) through the mount; a rename leaves two names of one file as they are.
///
/// A rename between two hard links of one file does nothing and succeeds. The node's rename
/// does so too and says so (its answer carries the file's attributes): the mount's cache then
/// keeps both names. But when the target is open, libfuse first hides it (renames it to a
/// `.fuse_hidden` name beside it) and then renames the source onto the name thus freed, which
/// would lose the source's name. So a hide made while the caller is inside rename(2) is kept for
/// the thread, whose next rename is the second half; when its source is the hidden file, the
/// target gets its name back as a link instead, and the source stays. The hidden name goes at
/// the last close, as for any file unlinked while open.
extension MfsOperations {
    /// A target libfuse hid for a rename, by which caller and when.
    private struct Hide {
        let node: UInt32
        let target: String
        let hidden: String
        let caller: pid_t
        let atNs: UInt64

        /// Whether the rename now served may be the second half of this one's.
        var isCurrent: Bool { caller == (fuse_get_context()?.pointee.pid ?? 0) && monotonicNs() - atNs < 1_000_000_000 }
    }

    /// The hide each thread made as the first half of a rename (by `pthread_self()`).
    private static let hides = Mutex<[pthread_t: Hide]>([:])

    static func rename(_ from: UnsafePointer<CChar>?, _ to: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
        let exchanged = flags & ExportedTree.renameExchange != 0
        let hide = hides.withLock { $0.removeValue(forKey: pthread_self()) }
        return twoPaths(from, to, "Rename") { $0.flags = Int32(bitPattern: flags) } instead: { node, request in
            guard let hide, !exchanged, hide.node == node, hide.target == request.path2, hide.isCurrent else { return nil }
            return relink(hide, ifSameFileAs: request) ? 0 : nil
        } cached: { node, request, answer in
            // Two names of one file: both stay (libfuse's node takes the new name).
            if answer.attr != nil && !exchanged {
                mount.renamed(node, request.path, to: request.path2, exchanged: false, by: request, keepingBoth: true)
                return
            }
            mount.cache.renamed(node, request.path, to: request.path2, exchanged: exchanged)
            mount.renamed(node, request.path, to: request.path2, exchanged: exchanged, by: request)
            if flags == 0, HiddenFiles.isHide(request.path, to: request.path2), omx_fuse_caller_in_rename() != 0 {
                let hide = Hide(node: node, target: request.path, hidden: request.path2, caller: fuse_get_context()?.pointee.pid ?? 0, atNs: monotonicNs())
                hides.withLock { $0[pthread_self()] = hide }
            }
        }
    }

    /// A link `request.path2` to `request.path` on `node` was made: the caches learn it.
    static func linked(_ node: UInt32, _ request: FsRequest, _ answer: FsResponse) {
        mount.cache.created(node, request.path2, answer.attr, by: request.cacheCaller)
        mount.cache.written(node, request.path)
        if let attr = answer.attr {
            for name in [request.path, request.path2] { mount.hardLinks.saw(node, name, attr) }
        }
        // Every other name of the file has one link more.
        mount.changedThrough(node, request.path2)
    }

    /// Links `hide`'s file to its name again, as the caller, when the source of `rename` names
    /// that same file. Returns whether it did.
    private static func relink(_ hide: Hide, ifSameFileAs rename: FsRequest) -> Bool {
        // The hidden file is open here (libfuse hid it for that): its handles know which it is.
        guard let hidden = mount.openIdentity(hide.node, hide.hidden) else { return false }
        let (found, source) = mount.call(hide.node, "Getattr", mount.request(rename.path))
        guard found == 0, let attr = source.attr, MfsMount.isSameFile((attr.dev, attr.ino), hidden) else { return false }
        var link = mount.request(hide.hidden)
        link.path2 = hide.target
        let (code, answer) = mount.call(hide.node, "Link", link, retry: false)
        guard code == 0 else { return false }
        linked(hide.node, link, answer)
        mount.renamed(hide.node, rename.path, to: rename.path2, exchanged: false, by: rename, keepingBoth: true)
        return true
    }
}
