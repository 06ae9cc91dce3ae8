import Glibc
import Logging
import Shared
import Synchronization

/// Where the gateway makes a file call, so that a slow or hung file system stops only the calls
/// that reach it:
/// - `.loop`: on the loop thread, for calls that touch one inode's metadata on local file
///   systems (microseconds, and no thread hop);
/// - `.pool`: on libuv's thread pool, for calls that move data or list directories there;
/// - `.mayHang(share)`: on the pool too, for calls that reach a file system that may keep them
///   for minutes (an NFS, SMB or FUSE mount whose server hangs, `MountTable`), or that a
///   symlink may lead to one, and relays to other nodes. These hold at most half the pool's
///   threads at once, and calls of one share (one mount point, one other node) at most half of
///   those; beyond that they wait. So a hung mount leaves the rest of the tree served, and the
///   other network mounts too.
final class FileCallLanes: Sendable {
    enum Lane: Sendable, Equatable {
        case loop, pool
        /// Calls that may hang, of one file system (its mount point) or other node.
        case mayHang(String)

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
    let shareLimit: Int
    private let logger: Logger
    private let metrics: MetricsRegistry
    /// The calls counted by lane (handles found once: each call adds one).
    private let loopCalls, poolCalls, mayHangCalls: MetricsRegistry.Counter
    /// Calls running in the `.mayHang` lane (in all and by share), those waiting for a thread
    /// in arrival order, and when a share was last found full (logged once a minute at most).
    private let mayHangState = Mutex<MayHangState>(MayHangState())

    private struct MayHangState {
        var running = 0
        var runningByShare: [String: Int] = [:]
        var waiting: [(share: String, continuation: UnsafeContinuation<Void, Never>)] = []
        var fullLoggedNs: UInt64?

        func admits(_ share: String, limit: Int, shareLimit: Int) -> Bool {
            running < limit && runningByShare[share, default: 0] < shareLimit
        }

        mutating func start(_ share: String) {
            running += 1
            runningByShare[share, default: 0] += 1
        }
    }

    /// - Parameter threads: the size of libuv's pool in this process (`UV_THREADPOOL_SIZE`).
    init(loop: EventLoop, threads: Int, logger: Logger, metrics: MetricsRegistry) {
        self.loop = loop
        self.threads = threads
        mayHangLimit = max(threads / 2, 1)
        shareLimit = max(mayHangLimit / 2, 1)
        self.logger = logger
        self.metrics = metrics
        let calls = { (lane: Lane) in
            metrics.counter(
                "omx_fs_calls_total", help: "File calls by where they ran: loop (thread), pool, may_hang (the pool's lane for file systems that may hang).",
                labels: [("lane", lane.label)])
        }
        (loopCalls, poolCalls, mayHangCalls) = (calls(.loop), calls(.pool), calls(.mayHang("")))
    }

    /// Makes the call `method` in `lane`.
    /// - Throws: `RPCError` (UNAVAILABLE) when the gateway stops before the call began, so the
    ///   mount asks another instance.
    ///   Whatever `body` throws, it throws too.
    func run(_ lane: Lane, _ method: String, _ body: @escaping @Sendable () throws -> FsResponse) async throws -> FsResponse {
        switch lane {
        case .loop:
            loopCalls.add()
            return try body()
        case .pool:
            poolCalls.add()
            return try await offload(method, body)
        case let .mayHang(share):
            mayHangCalls.add()
            await enterMayHang(share, method)
            defer { leaveMayHang(share) }
            return try await offload(method, body)
        }
    }

    private func offload(_ method: String, _ body: @escaping @Sendable () throws -> FsResponse) async throws -> FsResponse {
        let outcome: Result<FsResponse, Error>
        do {
            outcome = try await loop.offload { Result { try body() } }
        } catch {
            throw RPCError(.unavailable, "FSGateway.\(method): the gateway is stopping")
        }
        return try outcome.get()
    }

    private func enterMayHang(_ share: String, _ method: String) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let (admitted, log) = mayHangState.withLock { state -> (Bool, (ofShare: Int, all: Int)?) in
                if state.admits(share, limit: mayHangLimit, shareLimit: shareLimit) {
                    state.start(share)
                    return (true, nil)
                }
                state.waiting.append((share, continuation))
                let now = monotonicNs()
                guard state.fullLoggedNs.map({ now - $0 > 60_000_000_000 }) ?? true else { return (false, nil) }
                state.fullLoggedNs = now
                return (false, (state.runningByShare[share, default: 0], state.running))
            }
            publish()
            if let log {
                logger.warning(
                    "FSGateway.\(method): calls to \(share), which may hang (an NFS, SMB or FUSE mount, or another node), wait: it has \(log.ofShare) running (at most \(shareLimit)), all such calls \(log.all) (at most \(mayHangLimit) of \(threads) threads); the rest of the tree is served")
            }
            if admitted { continuation.resume() }
        }
    }

    private func leaveMayHang(_ share: String) {
        let next = mayHangState.withLock { state -> [UnsafeContinuation<Void, Never>] in
            state.running -= 1
            state.runningByShare[share, default: 1] -= 1
            if state.runningByShare[share] == 0 { state.runningByShare[share] = nil }
            // The first waiters whose shares have room take the threads freed, in arrival order.
            var admitted: [UnsafeContinuation<Void, Never>] = []
            var index = 0
            while index < state.waiting.count {
                let waiter = state.waiting[index]
                if state.admits(waiter.share, limit: mayHangLimit, shareLimit: shareLimit) {
                    state.start(waiter.share)
                    admitted.append(waiter.continuation)
                    state.waiting.remove(at: index)
                } else {
                    index += 1
                }
            }
            return admitted
        }
        publish()
        for continuation in next { continuation.resume() }
    }

    private func publish() {
        let (running, waiting) = mayHangState.withLock { ($0.running, $0.waiting.count) }
        metrics.set("omx_fs_may_hang_calls", help: "Calls running on file systems that may hang (NFS, SMB, FUSE) or relayed to other nodes.", Double(running))
        metrics.set("omx_fs_may_hang_calls_waiting", help: "Calls to file systems that may hang waiting for a thread.", Double(waiting))
    }
}
