import Dispatch
import Glibc
import Shared
import Synchronization

/// Closes the gateways' handles of the files the kernel released, in batches, from a thread
/// of its own: a close costs its caller nothing, and a gateway instance one call for all the
/// handles released within a millisecond of the first (or while the previous call was out).
final class ReleaseQueue: Sendable {
    /// Where a batch goes: the node, the instance holding the handles, the home relaying
    /// (0: none).
    struct Holder: Hashable, Sendable {
        let node: UInt32
        let instance: String
        let via: UInt32
    }

    private let pending = Mutex<[Holder: [UInt64]]>([:])
    private let wake = DispatchSemaphore(value: 0)

    /// Starts the thread that sends the batches with `send` (the holder, a request naming the
    /// handles).
    /// - Throws: `UVError` when the thread cannot be started.
    init(send: @escaping @Sendable (Holder, FsRequest) -> Void) throws {
        try startDetachedThread(named: "omx-mfs-release") { [self] in
            while true {
                wake.wait()
                usleep(1_000)
                let batches = pending.withLock { pending in
                    defer { pending.removeAll() }
                    return pending
                }
                for (holder, handles) in batches where !handles.isEmpty {
                    send(holder, FsRequest(naming: handles))
                }
            }
        }
    }

    /// Queues `handle` of `holder` for closing.
    func add(_ handle: UInt64, of holder: Holder) {
        let first = pending.withLock { pending in
            defer { pending[holder, default: []].append(handle) }
            return pending.isEmpty
        }
        if first { wake.signal() }
    }
}
