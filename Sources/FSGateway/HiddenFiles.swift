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
    /// How recently a file must have been closed for a hide of it to be libfuse's race.
    static let raceWindowNs: UInt64 = 10_000_000_000

    /// Hidden files with handles still open, each with the request (the unlinking caller's
    /// credentials) to remove it with.
    private var pending: [PathKey: FsRequest] = [:]
    /// When a handle of each file ("node:path") was last released (monotonic ns).
    private var lastClosedNs: [PathKey: UInt64] = [:]

    /// Whether `path` names a file as libfuse hides one: ".fuse_hidden" and 16 hex digits
    /// (the hidden node's number and a counter).
    static func isHidden(_ path: String) -> Bool {
        let name = path.utf8.split(separator: UInt8(ascii: "/")).last.map { Substring($0) } ?? ""
        guard name.hasPrefix(".fuse_hidden") else { return false }
        let digits = name.dropFirst(".fuse_hidden".count)
        return digits.count == 16 && digits.allSatisfy(\.isHexDigit)
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

    /// `old` on `node` was renamed `new` by `request`'s caller; `stillOpen` tells whether a
    /// handle is open at `new` now. Returns whether `new` is a hidden file to unlink at once:
    /// libfuse hid it as open, but its last handle was released meanwhile.
    mutating func renamed(node: UInt32, _ old: String, to new: String, by request: FsRequest, stillOpen: () -> Bool) -> Bool {
        let oldKey = PathKey("\(node):\(old)")
        let wasPending = pending.removeValue(forKey: oldKey)
        let closedNs = lastClosedNs.removeValue(forKey: oldKey)
        guard HiddenFiles.isHidden(new) else { return false }
        if stillOpen() {
            pending[PathKey("\(node):\(new)")] = wasPending ?? request
            return false
        }
        return closedNs.map { monotonicNs() - $0 < HiddenFiles.raceWindowNs } ?? false
    }
}
