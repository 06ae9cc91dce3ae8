import CLibUV
import Glibc

/// Waits on the loop for SIGTERM or SIGINT.
public enum SignalWatcher {
    /// Returns the first of SIGTERM and SIGINT that arrives.
    public static func waitForTermination(on loop: EventLoop) async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            onTermination(on: loop) { continuation.resume(returning: $0) }
        }
    }

    /// Calls `action` on the loop thread with the first of SIGTERM and SIGINT that arrives
    /// (neither ends the process meanwhile); later ones are left to their default.
    public static func onTermination(on loop: EventLoop, _ action: @escaping @Sendable (Int32) -> Void) {
        loop.execute { watch(on: loop, action) }
    }

    /// As `onTermination`, returning once the signals are watched: one that arrives from then
    /// on calls `action`.
    /// - Throws: `UVError` when the loop has been shut down.
    public static func watchTermination(on loop: EventLoop, _ action: @escaping @Sendable (Int32) -> Void) async throws {
        try await loop.submit { watch(on: loop, action) }
    }

    /// Starts watching SIGTERM and SIGINT; on the loop thread.
    private static func watch(on loop: EventLoop, _ action: @escaping @Sendable (Int32) -> Void) {
        final class Watch {
            var action: (@Sendable (Int32) -> Void)?
            var handles: [UnsafeMutablePointer<uv_signal_t>] = []
        }
        let watch = Watch()
        watch.action = action
        let context = Unmanaged.passRetained(watch).toOpaque()
        for signal in [SIGTERM, SIGINT] {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop.uvLoop, handle)
            handle.pointee.data = context
            watch.handles.append(handle)
            uv_signal_start(handle, { handle, signal in
                let watch = Unmanaged<Watch>.fromOpaque(handle!.pointee.data!).takeUnretainedValue()
                guard let action = watch.action else { return }
                watch.action = nil
                for handle in watch.handles {
                    uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { handle in
                        UnsafeMutableRawPointer(handle!).assumingMemoryBound(to: uv_signal_t.self).deallocate()
                    }
                }
                Unmanaged<Watch>.fromOpaque(handle!.pointee.data!).release()
                action(signal)
            }, signal)
        }
    }
}
