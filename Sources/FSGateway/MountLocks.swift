import Glibc
import Shared
import Synchronization

/// The file locks this mount's callers hold through the gateways (fcntl and flock on /mfs
/// files): which lock owner holds locks on which file, so that a close asks a gateway to drop
/// locks only when there are some (every close of a file sends an unlock), and the markers
/// (`MfsLockMarkers`) of each process that took any and each file locked, which tell the
/// Migrator who cannot move: the locks stay with this node's mount and would not follow.
final class MountLocks: Sendable {
    /// A lock owner's locks of one kind on one file.
    struct Key: Hashable {
        let owner: UInt64
        let wholeFile: Bool
        let node: UInt32
        /// The file on its node: "dev:ino" (hard links share it), or its path.
        let file: String
    }

    /// The file of open file `open` as keys name it: "dev:ino" (hard links share it), or, from
    /// a gateway that gave no identity, the path it was opened under.
    static func fileKey(_ open: MfsMount.OpenFile) -> String {
        open.identity.map { "\($0.dev):\($0.ino)" } ?? open.path
    }

    /// Where the markers are.
    let directory: String
    /// Serialises the calls of one key (by its hash, over a fixed set of locks).
    private let stripes = (0..<64).map { _ in Stripe() }
    private final class Stripe: Sendable { let lock = Mutex<Void>(()) }
    /// What the gateways hold for the mount's lock owners.
    private struct State {
        /// The process of each key that holds locks ("pid.start ticks"), the open files (our
        /// handles) they were taken through, as the gateway keeps them, and the file's inode
        /// number on the mount (nil: the gateway gave no identity).
        var held: [Key: (process: String, handles: Set<UInt64>, inode: UInt64?)] = [:]
        /// How many keys each holding process holds.
        var perProcess: [String: Int] = [:]
        /// How many keys hold locks on each file, by its inode number on the mount.
        var perFile: [UInt64: Int] = [:]
    }
    private let state = Mutex(State())

    /// Starts with no locks: the markers a previous mount left are removed (its files, and the
    /// locks taken through them, went with it).
    /// - Throws: `ConfigError` when the directory cannot be made.
    init(directory: String) throws {
        self.directory = directory
        try makeDirectories(directory)
        for name in (try? listDirectory(directory)) ?? [] { unlink("\(directory)/\(name)") }
    }

    /// Whether `key`'s owner may hold locks on its file (the gateway said so last).
    func holds(_ key: Key) -> Bool {
        state.withLock { $0.held[key] != nil }
    }

    /// Runs `body` (a lock call of `key` and the recording of its answer) while no other call
    /// of `key` runs.
    func serialized<T>(_ key: Key, _ body: () -> T) -> T {
        stripes[Int(UInt(bitPattern: key.hashValue) % UInt(stripes.count))].lock.withLock { _ in body() }
    }

    /// Takes the gateway's word after a lock call through open file `handle`: `key`'s owner
    /// holds locks on the file (numbered `inode` on the mount), taken by process `pid()` (asked
    /// only for a new holder, before taking the table: it costs reads of /proc) on `what`, for
    /// the markers; or it holds none any more.
    func update(_ key: Key, held: Bool, through handle: UInt64, by pid: () -> pid_t, on what: String, inode: UInt64?) {
        let process = held && !holds(key) ? ProcStat.key(of: pid()) : nil
        state.withLock { state in
            guard held else { return MountLocks.drop(key, &state, directory) }
            if let known = state.held[key] {
                state.held[key]?.handles = known.handles.union([handle])
                return
            }
            // Held before, but dropped meanwhile (the file released, its instance lost): the
            // process is read now, rarely, with the table held.
            let process = process ?? ProcStat.key(of: pid())
            state.held[key] = (process, [handle], inode)
            state.perProcess[process, default: 0] += 1
            if state.perProcess[process] == 1 { try? writeTextFile("\(directory)/\(process)", what + "\n") }
            if let inode {
                state.perFile[inode, default: 0] += 1
                if state.perFile[inode] == 1 { try? writeTextFile("\(directory)/\(MfsLockMarkers.fileMarker(inode: inode))", what + "\n") }
            }
        }
    }

    /// The gateway instance holding open file `handle` (on `node`, file `file` as `fileKey`
    /// names it) was lost: the locks taken on that file went with it. Forgets them, and returns
    /// the open files they were taken through (empty: there were none).
    func lost(through handle: UInt64, node: UInt32, file: String) -> Set<UInt64> {
        state.withLock { state in
            let keys = state.held.filter { ($0.key.node == node && $0.key.file == file) || $0.value.handles.contains(handle) }
            for key in keys.keys { MountLocks.drop(key, &state, directory) }
            return keys.values.reduce(into: Set<UInt64>()) { $0.formUnion($1.handles) }
        }
    }

    /// Open file `handle` closed: the locks taken through it alone went with it at the gateway
    /// (a flock lock's open file, or the last of an owner's files).
    func released(_ handle: UInt64) {
        state.withLock { state in
            for (key, entry) in state.held where entry.handles.contains(handle) {
                if entry.handles.count == 1 {
                    MountLocks.drop(key, &state, directory)
                } else {
                    state.held[key]?.handles = entry.handles.subtracting([handle])
                }
            }
        }
    }

    private static func drop(_ key: Key, _ state: inout State, _ directory: String) {
        guard let entry = state.held.removeValue(forKey: key) else { return }
        state.perProcess[entry.process, default: 1] -= 1
        if state.perProcess[entry.process] == 0 {
            state.perProcess[entry.process] = nil
            unlink("\(directory)/\(entry.process)")
        }
        guard let inode = entry.inode else { return }
        state.perFile[inode, default: 1] -= 1
        if state.perFile[inode] == 0 {
            state.perFile[inode] = nil
            unlink("\(directory)/\(MfsLockMarkers.fileMarker(inode: inode))")
        }
    }
}
