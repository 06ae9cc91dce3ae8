import Glibc
import Logging
import Shared
import Synchronization

/// Where the gateway makes a file call, so that a slow or hung file system stops only the calls
/// that reach it:
/// - `.loop`: on the loop thread, for calls that touch one inode's metadata on local file
///   systems (microseconds, and no thread hop);
/// - `.pool`: on libuv's thread pool, for calls that move data or list directories there;
/// - `.mayHang`: on the pool too, for calls that reach a file system that may keep them for
///   minutes (an NFS, SMB or FUSE mount whose server hangs, `MountTable`), or that a symlink
///   may lead to one, and relays to other nodes; these hold at most half the pool's threads at
///   once and wait beyond that, so a hung mount leaves the rest of the tree served.
final class FileCallLanes: Sendable {
    enum Lane: Sendable {
        case loop, pool, mayHang

        /// As the metrics name it.
        var label: String {
            switch self {
            case .loop: "loop"
            case .pool: "pool"
            case .mayHang: "may_hang"
            }
        }
    }

    let loop: EventLoop
    /// The pool's threads, and how many of them the `.mayHang` lane may hold.
    let threads: Int
    let mayHangLimit: Int
    private let logger: Logger
    private let metrics: MetricsRegistry
    /// Calls running in the `.mayHang` lane, those waiting for a thread, and when the lane was
    /// last found full (logged once a minute at most).
    private let mayHangState = Mutex<(running: Int, waiting: [UnsafeContinuation<Void, Never>], fullLoggedNs: UInt64?)>((0, [], nil))

    /// - Parameter threads: the size of libuv's pool in this process (`UV_THREADPOOL_SIZE`).
    init(loop: EventLoop, threads: Int, logger: Logger, metrics: MetricsRegistry) {
        self.loop = loop
        self.threads = threads
        mayHangLimit = max(threads / 2, 1)
        self.logger = logger
        self.metrics = metrics
    }

    /// Makes the call `method` in `lane`.
    /// - Throws: `RPCError` (UNAVAILABLE) when the gateway stops before the call began, so the
    ///   mount asks another instance.
    func run(_ lane: Lane, _ method: String, _ body: @escaping @Sendable () -> FsResponse) async throws -> FsResponse {
        metrics.add("omx_fs_calls_total", help: "File calls by where they ran: loop (thread), pool, may_hang (the pool's lane for file systems that may hang).", labels: [("lane", lane.label)])
        switch lane {
        case .loop:
            return body()
        case .pool:
            return try await offload(method, body)
        case .mayHang:
            await enterMayHang(method)
            defer { leaveMayHang() }
            return try await offload(method, body)
        }
    }

    private func offload(_ method: String, _ body: @escaping @Sendable () -> FsResponse) async throws -> FsResponse {
        do {
            return try await loop.offload(body)
        } catch {
            throw RPCError(.unavailable, "FSGateway.\(method): the gateway is stopping")
        }
    }

    private func enterMayHang(_ method: String) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let (admitted, log) = mayHangState.withLock { state -> (Bool, Bool) in
                if state.running < mayHangLimit {
                    state.running += 1
                    return (true, false)
                }
                state.waiting.append(continuation)
                let now = monotonicNs()
                let log = state.fullLoggedNs.map { now - $0 > 60_000_000_000 } ?? true
                if log { state.fullLoggedNs = now }
                return (false, log)
            }
            publish()
            if log {
                logger.warning(
                    "FSGateway.\(method): \(mayHangLimit) calls to file systems that may hang (NFS, SMB, FUSE mounts) or to other nodes are still running; further such calls wait, the rest of the tree is served")
            }
            if admitted { continuation.resume() }
        }
    }

    private func leaveMayHang() {
        let next = mayHangState.withLock { state -> UnsafeContinuation<Void, Never>? in
            // The next waiter takes this call's place.
            guard !state.waiting.isEmpty else {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        publish()
        next?.resume()
    }

    private func publish() {
        let (running, waiting) = mayHangState.withLock { ($0.running, $0.waiting.count) }
        metrics.set("omx_fs_may_hang_calls", help: "Calls running on file systems that may hang (NFS, SMB, FUSE) or relayed to other nodes.", Double(running))
        metrics.set("omx_fs_may_hang_calls_waiting", help: "Calls to file systems that may hang waiting for a thread.", Double(waiting))
    }
}
