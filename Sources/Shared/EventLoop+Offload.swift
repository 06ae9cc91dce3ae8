import CLibUV
import Glibc
import Synchronization

/// Work that blocks a thread for long (a disk, a network file system, a peer that answers
/// slowly) goes to libuv's thread pool (`uv_queue_work`), so it holds up neither the loop
/// thread nor Swift's cooperative pool, which has one thread per core. The pool has
/// `UV_THREADPOOL_SIZE` threads (libuv's default is 4; a service sets its own before its first
/// offload), and each result comes back through the loop thread.
extension EventLoop {
    /// How long a stopping loop waits for offloaded work still running before it ends anyway
    /// (a call stuck on a hung NFS or FUSE mount must not keep a service from stopping).
    static let offloadedWorkGraceMs: UInt64 = 2_000

    /// Runs `body` on one of libuv's pool threads and returns its result.
    /// - Throws: `UVError` (ECANCELED) when the loop stopped before `body` began.
    public func offload<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { continuation in
            // Set on the pool thread, read on the loop thread after libuv's queue handed it over.
            var value: T?
            let work = OffloadedWork(
                loop: self,
                run: { value = body() },
                finish: { cancelled in
                    if cancelled {
                        continuation.resume(throwing: UVError(code: UV_ECANCELED.rawValue, operation: "offloaded work: event loop stopped"))
                    } else {
                        continuation.resume(returning: value!)
                    }
                })
            if inLoop {
                queue(work)
            } else if !execute({ [self] in queue(work) }) {
                work.complete(cancelled: true)
            }
        }
    }

    /// Hands `work` to the pool (loop thread only).
    private func queue(_ work: OffloadedWork) {
        guard !stopping else { return work.complete(cancelled: true) }
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(work).toOpaque()
        let rc = uv_queue_work(
            uvLoop, request,
            { request in
                Unmanaged<OffloadedWork>.fromOpaque(request!.pointee.data).takeUnretainedValue().run()
            },
            { request, status in
                let work = Unmanaged<OffloadedWork>.fromOpaque(request!.pointee.data).takeRetainedValue()
                work.loop.offloadedWork.remove(request!)
                if work.loop.offloadedWork.isEmpty { work.loop.closeOffloadGraceTimer() }
                request!.deallocate()
                work.complete(cancelled: status == UV_ECANCELED.rawValue)
            })
        guard rc == 0 else {
            Unmanaged<OffloadedWork>.fromOpaque(request.pointee.data).release()
            request.deallocate()
            return work.complete(cancelled: true)
        }
        offloadedWork.insert(request)
    }

    /// Called as the loop stops: offloaded work not yet begun is cancelled; work still running
    /// has `offloadedWorkGraceMs` to finish, then the loop ends without it (its thread stays
    /// blocked until the process exits) and its callers hear ECANCELED.
    func stopWaitingForOffloadedWork() {
        for request in offloadedWork {
            uv_cancel(request.reinterpreted(as: uv_req_t.self))
        }
        guard !offloadedWork.isEmpty, offloadGraceTimer == nil else { return }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(uvLoop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        offloadGraceTimer = timer
        // Closed when the work finishes first (the loop ends then), else when it fires.
        uv_timer_start(timer, { timer in
            let loop = Unmanaged<EventLoop>.fromOpaque(timer!.pointee.data).takeUnretainedValue()
            // Their after-work callbacks will not run: the loop ends first.
            for request in loop.offloadedWork {
                Unmanaged<OffloadedWork>.fromOpaque(request.pointee.data).takeUnretainedValue().complete(cancelled: true)
            }
            loop.closeOffloadGraceTimer()
            uv_stop(loop.uvLoop)
        }, EventLoop.offloadedWorkGraceMs, 0)
    }

    /// Closes the grace timer, if there is one, and frees it once libuv lets go.
    func closeOffloadGraceTimer() {
        guard let timer = offloadGraceTimer else { return }
        offloadGraceTimer = nil
        uv_close(timer.reinterpreted(as: uv_handle_t.self)) { handle in handle!.deallocate() }
    }
}

/// One `offload` call: `run` on a pool thread, then `finish` on the loop thread, once (`true`
/// when it was cancelled before it ran, or given up on as the loop stopped).
private final class OffloadedWork: @unchecked Sendable {
    let loop: EventLoop
    let run: () -> Void
    private let finish: (_ cancelled: Bool) -> Void
    private let finished = Atomic(false)

    init(loop: EventLoop, run: @escaping () -> Void, finish: @escaping (_ cancelled: Bool) -> Void) {
        self.loop = loop
        self.run = run
        self.finish = finish
    }

    /// Tells the caller how the work ended, unless it was told already.
    func complete(cancelled: Bool) {
        guard !finished.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finish(cancelled)
    }
}
