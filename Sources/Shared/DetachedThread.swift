import CLibUV
import Glibc

/// Runs `body` on a new detached thread named `name` (as `top -H` and perf show it), at the
/// process's priority, for work that blocks in the kernel for long (reading fanotify events,
/// long polls from FUSE processes) and so belongs neither on an event loop nor on Swift's
/// cooperative pool.
/// - Throws: `UVError` naming pthread_create when the thread cannot be started.
public func startDetachedThread(named name: String, _ body: @escaping @Sendable () -> Void) throws {
    final class Start: Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    var thread = pthread_t()
    let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
    let rc = pthread_create(&thread, nil, { argument in
        let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
        CLibUV_name_this_thread(start.name)
        CLibUV_take_process_nice()
        start.body()
        return nil
    }, start)
    guard rc == 0 else {
        Unmanaged<Start>.fromOpaque(start).release()
        throw UVError(code: -rc, operation: "pthread_create \(name)")
    }
    pthread_detach(thread)
}
