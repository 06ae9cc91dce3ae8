import CLibUV
import Glibc

/// A libuv timer owned by Swift. Loop thread only; `close()` releases it.
final class LoopTimer {
    private let handle: UnsafeMutablePointer<uv_timer_t>
    private var callback: (() -> Void)?
    private var isClosed = false

    init(loop: EventLoop) {
        handle = .allocate(capacity: 1)
        uv_timer_init(loop.uvLoop, handle)
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
    }

    /// Fires `callback` once after `milliseconds`, replacing any earlier schedule.
    func start(afterMs milliseconds: UInt64, _ callback: @escaping () -> Void) {
        guard !isClosed else { return }
        self.callback = callback
        uv_timer_start(handle, { handle in
            let timer = Unmanaged<LoopTimer>.fromOpaque(handle!.pointee.data!).takeUnretainedValue()
            timer.callback?()
        }, milliseconds, 0)
    }

    /// Cancels the schedule.
    func stop() {
        guard !isClosed else { return }
        uv_timer_stop(handle)
        callback = nil
    }

    /// Stops the timer for good and frees it.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        callback = nil
        let raw = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
        // A stopping loop closed it already (see `EventLoop.shutdown`).
        guard uv_is_closing(raw) == 0 else { return }
        uv_close(raw) { handle in
            Unmanaged<LoopTimer>.fromOpaque(handle!.pointee.data!).release()
            UnsafeMutableRawPointer(handle!).assumingMemoryBound(to: uv_timer_t.self).deallocate()
        }
    }
}
