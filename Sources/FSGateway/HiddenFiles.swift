import Shared

/// What the mount needs to remove the `.fuse_hidden…` files libfuse 3.14 would leave behind:
/// the hidden files whose last close is still to come, and when each file was last closed.
///
/// libfuse's high-level layer renames a file unlinked while open to a hidden name, and unlinks
/// that at the file's last release. Before libfuse 3.15 (libfuse issue #746, fixed by its
/// PR #782), with nullpath_ok, a release finishing between the unlink's "is it open?" and its
/// rename leaves the hidden file with nobody to remove it, for good. The kernel sends a release
/// after close(2) has returned, so a file unlinked just after its close (a temporary file, an
/// editor's backup, SQLite's journal) often takes that path: 185 of 500 such files stayed.
struct HiddenFiles {
    /// How recently a file must have been closed for a hide of it to be libfuse's race (the
    /// hide follows the release by well under a millisecond, or the time a gateway takes to
    /// answer the rename).
    static let raceWindowNs: UInt64 = 2_000_000_000

    /// Hidden files with handles still open, each with the request (the unlinking caller's
    /// credentials) to remove it with.
    private var pending: [PathKey: FsRequest] = [:]
    /// When a handle of each file ("node:path") was last released (monotonic ns).
    private var lastClosedNs: [PathKey: UInt64] = [:]

    /// Whether no hidden file waits for its last close.
    var isEmpty: Bool { pending.isEmpty }

    /// Whether `path` names a file as libfuse hides one: ".fuse_hidden" and 16 hex digits
    /// (the hidden node's number and a counter).
    static func isHidden(_ path: String) -> Bool {
        let name = path.utf8.split(separator: UInt8(ascii: "/")).last.map { Substring($0) } ?? ""
        guard name.hasPrefix(".fuse_hidden") else { return false }
        let digits = name.dropFirst(".fuse_hidden".count)
        return digits.count == 16 && digits.allSatisfy(\.isHexDigit)
    }

    /// Whether a rename of `old` to `new` is libfuse hiding `old` (beside itself).
    static func isHide(_ old: String, to new: String) -> Bool {
        isHidden(new) && directory(of: old).elementsEqual(directory(of: new))
    }

    /// A handle of `path` on `node` was released; `stillOpen` tells whether others remain (it
    /// is asked only for a pending hidden file). Returns the request to unlink `path` with when
    /// it is a hidden file that just lost its last handle.
    mutating func released(node: UInt32, _ path: String, stillOpen: () -> Bool) -> FsRequest? {
        let key = PathKey("\(node):\(path)")
        guard pending[key] == nil else {
            return stillOpen() ? nil : pending.removeValue(forKey: key)
        }
        let now = monotonicNs()
        if lastClosedNs.count >= 4_096 { lastClosedNs = lastClosedNs.filter { now - $0.value < HiddenFiles.raceWindowNs } }
        lastClosedNs[key] = now
        return nil
    }

    /// `old` on `node` was renamed `new` (or, `exchanged`, the two swapped) by `request`'s
    /// caller; `stillOpen` tells whether a handle is open at `new` now. Returns whether `new` is
    /// a hidden file to unlink at once: libfuse hid it (a file is hidden beside itself) as open,
    /// but its last handle was released a moment before. A user's own rename to such a name of
    /// a file just closed looks the same: libfuse's names are ".fuse_hidden" and 16 hex digits,
    /// which nobody else picks.
    mutating func renamed(node: UInt32, _ old: String, to new: String, exchanged: Bool, by request: FsRequest, stillOpen: () -> Bool) -> Bool {
        let oldKey = PathKey("\(node):\(old)")
        let wasPending = exchanged ? nil : pending.removeValue(forKey: oldKey)
        let closedNs = lastClosedNs.removeValue(forKey: oldKey)
        movePending(node: node, old, to: new, exchanged: exchanged)
        guard !exchanged, HiddenFiles.isHide(old, to: new) else { return false }
        if stillOpen() {
            pending[PathKey("\(node):\(new)")] = wasPending ?? request
            return false
        }
        return closedNs.map { monotonicNs() - $0 < HiddenFiles.raceWindowNs } ?? false
    }

    /// Pending hidden files beneath a directory renamed (or swapped) follow it.
    private mutating func movePending(node: UInt32, _ old: String, to new: String, exchanged: Bool) {
        let prefix = "\(node):"
        for (key, request) in pending where key.path.hasPrefix(prefix) {
            let path = String(key.path.dropFirst(prefix.count))
            guard let moved = OpenDirectories.renamed(path, old, to: new, exchanged: exchanged) else { continue }
            pending[key] = nil
            pending[PathKey(prefix + moved)] = request
        }
    }

    /// The directory part of `path` ("" for a name at the top).
    private static func directory(of path: String) -> Substring.UTF8View {
        let slash = path.utf8.lastIndex(of: UInt8(ascii: "/"))
        return Substring(path)[..<(slash ?? path.startIndex)].utf8
    }
}
