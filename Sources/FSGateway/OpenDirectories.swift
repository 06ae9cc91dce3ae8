import Synchronization

/// The directories open on the mount (opendir), by handle: libfuse makes the calls on an open
/// directory without its path (nullpath_ok), so the mount keeps where each was opened. Their
/// handles have the top bit set, which open files' never have.
final class OpenDirectories: Sendable {
    private let table = Mutex<(next: UInt64, open: [UInt64: String])>((1 << 63, [:]))

    /// A handle for directory `path` (as the mount names it: "/<node>/...").
    func open(_ path: String) -> UInt64 {
        table.withLock { state in
            let id = state.next
            state.next = state.next == .max ? 1 << 63 : state.next + 1
            state.open[id] = path
            return id
        }
    }

    /// Where directory `id` was opened, or nil for no open directory.
    func path(_ id: UInt64) -> String? { table.withLock { $0.open[id] } }

    func close(_ id: UInt64) { _ = table.withLock { $0.open.removeValue(forKey: id) } }

    /// `old` on `node` became `new` (or, `exchanged`, the two swapped): the directories open
    /// at or beneath them follow.
    func renamed(node: UInt32, _ old: String, to new: String, exchanged: Bool) {
        table.withLock { state in
            for (id, path) in state.open {
                guard let rest = OpenDirectories.relative(path, node: node) else { continue }
                if let moved = OpenDirectories.renamed(rest, old, to: new, exchanged: exchanged) {
                    state.open[id] = "/\(node)/\(moved)"
                }
            }
        }
    }

    /// `path` ("/<node>/rest" or "<node>/rest") relative to `node`'s tree, or nil when it is
    /// not on `node`.
    static func relative(_ path: String, node: UInt32) -> String? {
        let parts = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.first == Substring(String(node)) else { return nil }
        return parts.count > 1 ? String(parts[1]) : ""
    }

    /// Where `path` is after `old` became `new` (or, `exchanged`, the two swapped); nil when
    /// the rename did not touch it.
    static func renamed(_ path: String, _ old: String, to new: String, exchanged: Bool) -> String? {
        moved(path, old, to: new) ?? (exchanged ? moved(path, new, to: old) : nil)
    }

    /// `path` with its prefix `old` (the whole of it, or a directory of it) replaced by `new`;
    /// nil when it does not lie there.
    private static func moved(_ path: String, _ old: String, to new: String) -> String? {
        if path.utf8.elementsEqual(old.utf8) { return new }
        let prefix = old + "/"
        guard path.utf8.starts(with: prefix.utf8) else { return nil }
        return new + "/" + String(decoding: path.utf8.dropFirst(prefix.utf8.count), as: UTF8.self)
    }
}
