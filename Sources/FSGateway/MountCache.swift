import Glibc
import Shared
import Synchronization

/// What the /mfs mount knows of each node's tree beyond the kernel's one-second caches: files'
/// attributes, and the listings of the directories the mount made itself (a name missing from
/// one needs no call to be known missing). It is used for a node only while the mount follows
/// that node's changes (`ChangeFollower`): every change made there — through any gateway or by
/// a process on the node — empties what it touched, and the mount's own changes update it as
/// they succeed. Nothing beneath a subtree the node cannot watch is kept.
///
/// News of a change takes milliseconds to arrive. Meanwhile an attribute may be stale, as the
/// kernel's own cache allows for a second anyway (an open renews the file's: close-to-open);
/// but a name another node just created must not be said missing, or a file written on one
/// node and opened at once on another would not be there. So "missing" is answered only in a
/// directory this mount made and in which it has heard of no change but its own.
///
/// A caller gets only what the gateway gave that same caller (root excepted, whom no
/// permission stops): a user who may not search a directory learns nothing of it from what
/// another user looked up.
final class MountCache: Sendable {
    /// What the cache says of a path.
    enum Answer: Equatable {
        case attr(FileAttr)
        /// Its directory's listing is known and does not hold it.
        case missing
        /// Ask the node.
        case unknown
    }

    /// Who asks: the ids the gateway checks permissions with.
    struct Caller: Hashable, Sendable {
        var uid: UInt32
        var gid: UInt32
        var groups: [UInt32]

        static let root = Caller(uid: 0, gid: 0, groups: [])
        var isRoot: Bool { uid == 0 }
    }

    /// Something the gateway told, and to whom (besides root).
    fileprivate struct Known<Value> {
        var value: Value
        var callers: Set<Caller>

        func tells(_ caller: Caller) -> Bool { caller.isRoot || callers.contains(caller) }
    }

    fileprivate struct NodeState {
        var unwatched: [String]
        /// Goes up with every change that empties part of the cache: an answer asked for
        /// before a change to its path (or above or beneath it) is not kept, since it may
        /// predate the change.
        var generation: UInt64 = 0
        /// The latest changes: the generation each made, and the paths it touched.
        var recent: [(generation: UInt64, paths: [String])] = []
        var attrs: [PathKey: Known<FileAttr>] = [:]
        /// Complete listings of the directories this mount made (and changed only itself since).
        var listings: [PathKey: Known<Set<PathKey>>] = [:]
    }

    /// Entries kept per node; past it the node's cache starts empty again.
    let limit: Int
    /// The followed nodes' states; a node that is not followed has none.
    private let nodes = Mutex<[UInt32: NodeState]>([:])

    init(limit: Int = 50_000) {
        self.limit = limit
    }

    // MARK: Following

    /// Starts using the cache for `node`, empty, caching nothing beneath `unwatched`.
    func follow(_ node: UInt32, unwatched: [String]) {
        nodes.withLock { nodes in
            let generation = (nodes[node]?.generation ?? 0) + 1
            nodes[node] = NodeState(unwatched: unwatched, generation: generation)
        }
    }

    /// Stops using the cache for `node` and empties it.
    func stopFollowing(_ node: UInt32) {
        _ = nodes.withLock { $0.removeValue(forKey: node) }
    }

    /// Whether the cache is used for `node`.
    func follows(_ node: UInt32) -> Bool {
        nodes.withLock { $0[node] != nil }
    }

    /// A change made on `node` by someone else.
    func apply(_ node: UInt32, _ change: TreeChange) {
        update(node, touching: [change.path]) { state in
            // A directory that moved, went, or has a new mode or owner (which may let fewer
            // callers beneath it) takes everything beneath it along.
            state.forget(change.path, beneath: change.directory)
            guard change.entry else { return }
            // Whether the entry came or went is not said: its directory's listing is dropped.
            let (parent, _) = MountCache.split(change.path)
            state.attrs[PathKey(parent)] = nil
            state.listings[PathKey(parent)] = nil
        }
    }

    // MARK: Asking and filling

    /// What the cache says of `path` on `node` to `caller`.
    func lookup(_ node: UInt32, _ path: String, for caller: Caller) -> Answer {
        nodes.withLock { nodes in
            guard let state = nodes[node], !state.isUnwatched(path) else { return .unknown }
            if let known = state.attrs[PathKey(path)], known.tells(caller) { return .attr(known.value) }
            let (parent, name) = MountCache.split(path)
            if !path.isEmpty, let listing = state.listings[PathKey(parent)], listing.tells(caller), !listing.value.contains(PathKey(name)) { return .missing }
            return .unknown
        }
    }

    /// Where `node`'s cache stands before a call whose answer may be kept (nil: not followed).
    func generation(_ node: UInt32) -> UInt64? {
        nodes.withLock { $0[node]?.generation }
    }

    /// Keeps `attr` of `path` as told to `caller`, unless the cache changed since `generation`
    /// was read. A file with several names is not kept: a change made through another name
    /// would not reach it.
    func remember(_ node: UInt32, _ path: String, _ attr: FileAttr, for caller: Caller, since generation: UInt64?) {
        guard !attr.isUnknown, attr.isDirectory || attr.nlink <= 1 else { return }
        fill(node, path, since: generation) { $0.attrs.tell(path, attr, to: caller) }
    }

    /// Keeps the attributes of the entries of directory `path` (a listing with attributes) as
    /// told to `caller`, unless the cache changed since `generation` was read.
    func rememberListing(_ node: UInt32, _ path: String, _ entries: [(name: String, attr: FileAttr)], for caller: Caller, since generation: UInt64?) {
        fill(node, path, since: generation) { state in
            for (name, attr) in entries where !attr.isUnknown && (attr.isDirectory || attr.nlink <= 1) {
                state.attrs.tell(MountCache.join(path, name), attr, to: caller)
            }
        }
    }

    // MARK: The mount's own changes

    /// `caller` created `path` (a file, directory, symlink or link), with `attr` when known; a
    /// directory just made is known to be empty.
    func created(_ node: UInt32, _ path: String, _ attr: FileAttr?, by caller: Caller, emptyDirectory: Bool = false) {
        update(node, touching: [path]) { state in
            // Nothing was beneath a name that did not exist.
            state.forget(path, beneath: false)
            state.entered(path)
            guard !state.isUnwatched(path) else { return }
            if let attr, attr.isDirectory || attr.nlink <= 1 { state.attrs[PathKey(path)] = Known(value: attr, callers: [caller]) }
            if emptyDirectory { state.listings[PathKey(path)] = Known(value: [], callers: [caller]) }
        }
    }

    /// `path` was removed (with what was beneath it, for a directory).
    func removed(_ node: UInt32, _ path: String, directory: Bool) {
        update(node, touching: [path]) { state in
            state.forget(path, beneath: directory)
            state.left(path)
        }
    }

    /// `path` moved to `newPath` (replacing what was there).
    func renamed(_ node: UInt32, _ path: String, to newPath: String, exchanged: Bool = false) {
        update(node, touching: [path, newPath]) { state in
            if exchanged {
                // RENAME_EXCHANGE: both names stay, each now naming the other's entry.
                state.forget(path, beneath: true)
                state.forget(newPath, beneath: true)
                return
            }
            let directory = state.attrs[PathKey(path)]?.value.isDirectory ?? true
            state.forget(path, beneath: directory)
            state.forget(newPath, beneath: directory)
            state.left(path)
            state.entered(newPath)
        }
    }

    /// The data of file `path` changed (its size and times).
    func written(_ node: UInt32, _ path: String) {
        update(node, touching: [path]) { $0.attrs[PathKey(path)] = nil }
    }

    /// The mode, owner or times of `path` changed: for a directory, who may search it too.
    func changed(_ node: UInt32, _ path: String) {
        update(node, touching: [path]) { state in state.forget(path, beneath: state.attrs[PathKey(path)]?.value.isDirectory ?? true) }
    }

    // MARK: Helpers

    /// Changes remembered for telling whether an answer in flight may predate one.
    static let recentChanges = 1_024

    /// Applies an invalidation touching `paths` to a followed node and moves its generation on.
    private func update(_ node: UInt32, touching paths: [String], _ body: (inout NodeState) -> Void) {
        nodes.withLock { nodes in
            guard nodes[node] != nil else { return }
            body(&nodes[node]!)
            nodes[node]!.generation += 1
            nodes[node]!.recent.append((nodes[node]!.generation, paths))
            if nodes[node]!.recent.count > MountCache.recentChanges { nodes[node]!.recent.removeFirst(MountCache.recentChanges / 4) }
        }
    }

    /// Keeps an answer about `path` read at `generation`, unless a change made since touched
    /// the path, a directory above it or anything beneath it (or cannot be told any more).
    private func fill(_ node: UInt32, _ path: String, since generation: UInt64?, _ body: (inout NodeState) -> Void) {
        nodes.withLock { nodes in
            guard let generation, let state = nodes[node], !state.isUnwatched(path), !state.changed(path, since: generation) else { return }
            if nodes[node]!.attrs.count + nodes[node]!.listings.count > limit {
                nodes[node]!.attrs.removeAll()
                nodes[node]!.listings.removeAll()
            }
            body(&nodes[node]!)
        }
    }

    /// "a/b/c" → ("a/b", "c"); "c" → ("", "c"), split at the last "/" byte.
    static func split(_ path: String) -> (parent: String, name: String) {
        let bytes = path.utf8
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return ("", path) }
        return (String(decoding: bytes[..<slash], as: UTF8.self), String(decoding: bytes[bytes.index(after: slash)...], as: UTF8.self))
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.isEmpty ? name : directory + "/" + name
    }
}

extension Dictionary where Key == PathKey {
    /// Keeps `value` of `path` as told to `caller`: one more caller for the same answer, or
    /// this caller's alone for a new one.
    fileprivate mutating func tell<Told: Equatable>(_ path: String, _ value: Told, to caller: MountCache.Caller) where Value == MountCache.Known<Told> {
        let key = PathKey(path)
        if var known = self[key], known.value == value {
            known.callers.insert(caller)
            self[key] = known
        } else {
            self[key] = MountCache.Known(value: value, callers: [caller])
        }
    }
}

extension MountCache.NodeState {
    /// Whether a change after `generation` touched `path`, a directory above it or anything
    /// beneath it (true when the changes kept do not reach back that far).
    func changed(_ path: String, since generation: UInt64) -> Bool {
        guard generation != self.generation else { return false }
        guard let oldest = recent.first, oldest.generation <= generation + 1 else { return true }
        // Newest first, and only back to `generation`: a fill is checked against the few
        // changes made while its call was out, not against all those kept.
        return recent.reversed().prefix { $0.generation > generation }.contains { change in
            change.paths.contains { $0.isEmpty || path.isEmpty || path.isPath(atOrBeneath: $0) || $0.isPath(atOrBeneath: path) }
        }
    }

    func isUnwatched(_ path: String) -> Bool {
        unwatched.contains { $0.isEmpty || path.isPath(atOrBeneath: $0) }
    }

    /// Forgets what is kept of `path` itself, and with `beneath`, of everything under it.
    mutating func forget(_ path: String, beneath: Bool) {
        attrs[PathKey(path)] = nil
        listings[PathKey(path)] = nil
        guard beneath else { return }
        attrs = attrs.filter { !path.isEmpty && !$0.key.path.isPath(atOrBeneath: path) }
        listings = listings.filter { !path.isEmpty && !$0.key.path.isPath(atOrBeneath: path) }
    }

    /// `path` appeared in its directory, whose listing gains it and whose attributes change.
    mutating func entered(_ path: String) {
        let (parent, name) = MountCache.split(path)
        listings[PathKey(parent)]?.value.insert(PathKey(name))
        attrs[PathKey(parent)] = nil
    }

    /// `path` left its directory.
    mutating func left(_ path: String) {
        let (parent, name) = MountCache.split(path)
        listings[PathKey(parent)]?.value.remove(PathKey(name))
        attrs[PathKey(parent)] = nil
    }
}

extension FileAttr {
    var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
}
