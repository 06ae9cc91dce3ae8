import Dispatch
import Glibc
import Shared
import Synchronization

/// Write-behind for files open on /mfs, as NFS and sshfs do it: a write is acknowledged once
/// queued and is sent in the background, with up to `window` writes of a file in flight, so the
/// kernel's copy, the network and the gateway's disk work overlap instead of taking turns.
/// A write overlapping one in flight to the same file, through any handle, waits for it (the
/// gateway may apply concurrent writes in any order); reads, stat, truncate, fsync, flush and
/// close of the same file wait for its writes queued before them. A write whose gateway
/// instance died is sent again for a while (the instance may be restarting); a failure then
/// sticks to the open file: every later write, fsync and close of it reports it (any close may
/// be the one a program checks).
final class WriteBehind: Sendable {
    static let window = 4

    /// The writes in flight of one open file, and its first failure.
    final class File: Sendable {
        /// Where the file is: "node:path", shared by every handle open on it (renames through
        /// the mount move it).
        let key: Mutex<String>
        /// Which file it is on its node (node, device and inode, when known): hard links and
        /// renames keep it.
        let identity: HardLinks.Identity?
        let slots = DispatchSemaphore(value: WriteBehind.window)
        let state = Mutex<(inFlight: [Flight], error: Int32, writers: Set<pid_t>)>(([], 0, []))

        /// A write in flight: its bytes, and what its end signals.
        struct Flight {
            let range: Range<Int64>
            let done: DispatchGroup
        }

        init(key: String, identity: HardLinks.Identity?) {
            self.key = Mutex(key)
            self.identity = identity
        }

        /// The ends of the writes in flight over `range`.
        func flights(over range: Range<Int64>) -> [DispatchGroup] {
            state.withLock { $0.inFlight.filter { $0.range.overlaps(range) }.map(\.done) }
        }

        /// Waits for the writes of this file in flight now (not for those queued meanwhile: a
        /// writer that keeps the window full does not hold the caller up without end).
        func drain() {
            for done in state.withLock({ $0.inFlight.map(\.done) }) { done.wait() }
        }

        /// The first failure of a write in the background (0: none).
        var failure: Int32 { state.withLock { $0.error } }

        /// Whether the process of thread `tid` wrote through this open file (FUSE names the
        /// calling thread): its close waits for the writes and reports their failure, whichever
        /// of its threads wrote. Another process closing an inherited copy (a child at exec)
        /// does not wait: it did not write, and it may be what the writes wait for. A writer
        /// that is gone counts as the caller's thread (the safe side: waiting).
        func written(byThreadOf tid: pid_t) -> Bool {
            let writers = state.withLock { $0.writers }
            if writers.contains(tid) { return true }
            guard !writers.isEmpty, let group = threadGroup(of: tid) else { return false }
            return writers.contains { threadGroup(of: $0).map { $0 == group } ?? true }
        }
    }

    private let files = Mutex<[UInt64: File]>([:])
    private let queue = DispatchQueue(label: "omx-mfs-write-behind", attributes: .concurrent)

    /// Starts tracking writes of our handle `id`, open on `path` of `node` (the file `identity`
    /// there, when known).
    func track(_ id: UInt64, node: UInt32, path: String, identity: HardLinks.Identity?) {
        files.withLock { $0[id] = File(key: "\(node):\(path)", identity: identity) }
    }

    /// The tracked file of handle `id` (nil: its writes go out one at a time, e.g. O_APPEND).
    func file(_ id: UInt64) -> File? { files.withLock { $0[id] } }

    /// Waits for every write in flight to `path` of `node`, through any handle.
    func drain(node: UInt32, path: String) {
        let key = "\(node):\(path)"
        for file in files.withLock({ $0.values.filter { $0.key.withLock { $0 }.isSamePath(as: key) } }) { file.drain() }
    }

    /// `old` on `node` was renamed `new` (or, `exchanged`, the two swapped) through the mount:
    /// the files open there are waited for under their new names.
    func renamed(node: UInt32, _ old: String, to new: String, exchanged: Bool) {
        let prefix = "\(node):"
        for file in files.withLock({ Array($0.values) }) {
            file.key.withLock { key in
                guard key.hasPrefix(prefix), let moved = OpenDirectories.renamed(String(key.dropFirst(prefix.count)), old, to: new, exchanged: exchanged) else { return }
                key = prefix + moved
            }
        }
    }

    /// The tracked handles of `file`'s file, itself among them: the same file on its node when
    /// both know which, else the same path.
    private func sameFile(as file: File) -> [File] {
        let key = file.key.withLock { $0 }
        return files.withLock { files in
            guard files.count > 1 else { return [file] }
            return files.values.filter { other in
                if other === file { return true }
                if let identity = file.identity, let otherIdentity = other.identity { return identity.isSame(as: otherIdentity) }
                return other.key.withLock { $0 }.isSamePath(as: key)
            }
        }
    }

    /// Waits for handle `id`'s writes and stops tracking it.
    func finish(_ id: UInt64) {
        guard let file = file(id) else { return }
        file.drain()
        files.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// Queues a write of `data` at `offset` to `file` by thread `tid`; `send` makes the call
    /// and returns 0 or -errno. Returns at once with the bytes accepted, or an earlier write's
    /// failure.
    func write(_ file: File, by tid: pid_t, offset: Int64, data: [UInt8], send: @escaping @Sendable ([UInt8]) -> Int32) -> Int32 {
        let failure = file.failure
        guard failure == 0 else { return failure }
        let range = offset..<offset + Int64(data.count)
        file.slots.wait()
        for other in sameFile(as: file) {
            for done in other.flights(over: range) { done.wait() }
        }
        let done = DispatchGroup()
        done.enter()
        file.state.withLock { state in
            state.inFlight.append(File.Flight(range: range, done: done))
            state.writers.insert(tid)
        }
        queue.async {
            let code = send(data)
            file.state.withLock { state in
                state.inFlight.removeAll { $0.done === done }
                if code != 0 && state.error == 0 { state.error = code }
            }
            done.leave()
            file.slots.signal()
        }
        return Int32(data.count)
    }
}

/// The process (thread group) of thread `tid`, from /proc; nil once the thread is gone.
func threadGroup(of tid: pid_t) -> pid_t? {
    procNumber("Tgid:", in: "/proc/\(tid)/status").map { pid_t($0) }
}
