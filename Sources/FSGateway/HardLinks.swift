import Shared
import Synchronization

/// The names under which the mount showed the kernel files that have several hard links.
///
/// libfuse's high-level layer gives each name its own kernel inode, with its own cached
/// attributes and pages (NFS's names share one). So after a change through one name the kernel
/// must forget what it keeps of the others, and a read through another name must wait for the
/// writes queued through this one (`MfsMount+HardLinks.swift`). Names are learnt from the
/// attributes the mount hands the kernel; a name that went stale meanwhile costs one needless
/// invalidation at most.
final class HardLinks: Sendable {
    /// One file: its node, and its device and inode number there.
    struct Identity: Hashable, Sendable {
        let node: UInt32
        let dev: UInt64
        let ino: UInt64

        /// Whether both name one file (see `MfsMount.isSameFile`).
        func isSame(as other: Identity) -> Bool { node == other.node && MfsMount.isSameFile((dev, ino), (other.dev, other.ino)) }
    }

    private struct Name: Hashable {
        let node: UInt32
        let path: PathKey
    }

    private struct Table {
        var names: [Identity: Set<PathKey>] = [:]
        var identities: [Name: Identity] = [:]

        mutating func forget(_ name: Name) {
            guard let identity = identities.removeValue(forKey: name) else { return }
            names[identity]?.remove(name.path)
            if names[identity]?.isEmpty == true { names[identity] = nil }
        }
    }

    /// Names kept; past it the table starts empty again (and those names may stay stale for
    /// the kernel's cache time, as they would without it).
    let limit: Int
    private let table = Mutex(Table())
    /// Whether any name is kept: spares the lock on every call when no file has several.
    private let anyKept = Atomic<Bool>(false)

    init(limit: Int = 10_000) {
        self.limit = limit
    }

    /// `path` on `node` was shown to the kernel with `attr`.
    func saw(_ node: UInt32, _ path: String, _ attr: FileAttr) {
        let several = !attr.isDirectory && !attr.isUnknown && attr.nlink > 1
        guard several || anyKept.load(ordering: .relaxed) else { return }
        let name = Name(node: node, path: PathKey(path))
        let identity = Identity(node: node, dev: attr.dev, ino: attr.ino)
        table.withLock { table in
            defer { anyKept.store(!table.identities.isEmpty, ordering: .relaxed) }
            let known = table.identities[name]
            if let known, known != identity || !several { table.forget(name) }
            guard several, known != identity else { return }
            if table.identities.count >= limit { table = Table() }
            table.identities[name] = identity
            table.names[identity, default: []].insert(name.path)
        }
    }

    /// The other names of the file that `path` names on `node` (or, when given, of the file
    /// `identity` on it): empty when it has no other name known.
    func siblings(_ node: UInt32, _ path: String, identity: MfsMount.FileIdentity? = nil) -> [String] {
        others(node, path, identity: identity).names
    }

    /// `siblings`, and the file when it is known to have several names.
    func others(_ node: UInt32, _ path: String, identity: MfsMount.FileIdentity? = nil) -> (names: [String], file: Identity?) {
        guard anyKept.load(ordering: .relaxed) else { return ([], nil) }
        let key = PathKey(path)
        return table.withLock { table in
            let file = identity.map { Identity(node: node, dev: $0.dev, ino: $0.ino) } ?? table.identities[Name(node: node, path: key)]
            guard let file, let names = table.names[file] else { return ([], nil) }
            return (names.filter { $0 != key }.map(\.path), file)
        }
    }

    /// `path` on `node` is gone (unlinked, or renamed over); returns the file's other names.
    func removed(_ node: UInt32, _ path: String) -> [String] {
        let others = siblings(node, path)
        guard anyKept.load(ordering: .relaxed) else { return others }
        table.withLock { table in
            table.forget(Name(node: node, path: PathKey(path)))
            anyKept.store(!table.identities.isEmpty, ordering: .relaxed)
        }
        return others
    }

    /// `old` on `node` was renamed `new` (or, `exchanged`, the two swapped): the names beneath
    /// follow. Returns the other names of a file whose name `new` was replaced.
    func renamed(_ node: UInt32, _ old: String, to new: String, exchanged: Bool) -> [String] {
        guard anyKept.load(ordering: .relaxed) else { return [] }
        let replaced = exchanged ? [] : removed(node, new)
        table.withLock { table in
            // All old names go first: with `exchanged`, one name's new place is another's old one.
            let moves = table.identities.compactMap { name, identity in
                name.node == node ? OpenDirectories.renamed(name.path.path, old, to: new, exchanged: exchanged).map { (name, identity, $0) } : nil
            }
            for (name, _, _) in moves { table.forget(name) }
            for (_, identity, moved) in moves {
                let name = Name(node: node, path: PathKey(moved))
                table.forget(name)
                table.identities[name] = identity
                table.names[identity, default: []].insert(name.path)
            }
        }
        return replaced
    }
}
