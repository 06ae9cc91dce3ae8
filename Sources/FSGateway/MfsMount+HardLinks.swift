import CFuse
import Dispatch
import Shared
import Synchronization

/// Keeping a file's names alike (`HardLinks`): what one name shows after a change through
/// another, and reads through one name after writes queued through another.
extension MfsMount {
    /// How long a request's thread waits for the kernel to drop another name's cache. The
    /// kernel waits for that name's pages that are locked; a write through it in progress holds
    /// them until its own request is answered, and that request may wait here for this name's:
    /// past this time both go on, and those names stay stale for the cache time at most.
    static let invalidationWaitMs = 100

    /// The names of the file at `path` on `node` (or of the file `identity` there) but `path`:
    /// those the kernel was shown, and, for a file known to have several, those it is open
    /// under here (a name libfuse hid is known only there).
    func otherNames(_ node: UInt32, _ path: String, identity: FileIdentity? = nil) -> [String] {
        let (shown, file) = hardLinks.others(node, path, identity: identity)
        guard let file else { return shown }
        let open = openNames(of: (file.dev, file.ino), on: node).filter { PathKey($0) != PathKey(path) }
        return open.isEmpty ? shown : Array(Set(shown + open))
    }

    /// Waits for the writes queued to the file at `path` on `node` through any of its names.
    func drainWrites(node: UInt32, path: String) {
        writeBehind.drain(node: node, path: path)
        for name in otherNames(node, path) { writeBehind.drain(node: node, path: name) }
    }

    /// The file at `path` on `node` changed through that name: the kernel forgets what it keeps
    /// of the file's other names.
    func changedThrough(_ node: UInt32, _ path: String) {
        invalidate(node, otherNames(node, path))
    }

    /// The file open as our handle `id` changed through it.
    func changedThrough(handle id: UInt64) {
        guard let open = file(id) else { return }
        invalidate(open.node, otherNames(open.node, open.path, identity: open.identity))
    }

    /// The file a call named changed: through its open handle when the call came with one (an
    /// fchmod, say: its name may have gone), else through its path `rest` on `node`.
    func changedThrough(_ info: UnsafeMutablePointer<fuse_file_info>?, _ node: UInt32, _ rest: String) {
        if let id = info?.pointee.fh, id != 0, file(id) != nil { return changedThrough(handle: id) }
        changedThrough(node, rest)
    }

    /// Drops the kernel's attributes and pages of `names` on `node`, from another thread (see
    /// `invalidationWaitMs`), and waits for that a while.
    func invalidate(_ node: UInt32, _ names: [String]) {
        guard !names.isEmpty else { return }
        let done = DispatchSemaphore(value: 0)
        invalidations.async {
            for name in names { omx_fuse_invalidate_path(WireFileName.cString("/\(node)/\(name)")) }
            done.signal()
        }
        if done.wait(timeout: .now() + .milliseconds(MfsMount.invalidationWaitMs)) == .timedOut {
            logger.debug("the kernel's cache of \(names.count) other name(s) of a file on node \(node) was not dropped within \(MfsMount.invalidationWaitMs) ms (a call through one of them is in progress); it is dropped once that ends")
        }
    }
}
