import CLibUV
import Glibc

/// Waits on the loop for SIGTERM or SIGINT.
public enum SignalWatcher {
    /// Returns the first of SIGTERM and SIGINT that arrives.
    public static func waitForTermination(on loop: EventLoop) async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            loop.execute {
                final class Watch {
                    var continuation: CheckedContinuation<Int32, Never>?
                    var handles: [UnsafeMutablePointer<uv_signal_t>] = []
                }
                let watch = Watch()
                watch.continuation = continuation
                let context = Unmanaged.passRetained(watch).toOpaque()
                for signal in [SIGTERM, SIGINT] {
                    let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
                    uv_signal_init(loop.uvLoop, handle)
                    handle.pointee.data = context
                    watch.handles.append(handle)
                    uv_signal_start(handle, { handle, signal in
                        let watch = Unmanaged<Watch>.fromOpaque(handle!.pointee.data!).takeUnretainedValue()
                        guard let continuation = watch.continuation else { return }
                        watch.continuation = nil
                        for handle in watch.handles {
                            uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { handle in
                                UnsafeMutableRawPointer(handle!).assumingMemoryBound(to: uv_signal_t.self).deallocate()
                            }
                        }
                        Unmanaged<Watch>.fromOpaque(handle!.pointee.data!).release()
                        continuation.resume(returning: signal)
                    }, signal)
                }
            }
        }
    }
}
