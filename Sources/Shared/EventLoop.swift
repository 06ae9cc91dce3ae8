import CLibUV
import Glibc
import Synchronization

/// One libuv loop running on its own thread. Every libuv call of a service happens on this
/// thread; other threads hand work to it with `execute(_:)` (the one place where Swift
/// concurrency crosses into the loop). The loop is also a `TaskExecutor`: tasks that prefer it
/// run on the loop thread and reach sockets without a thread hop (see `EventLoop+Executor.swift`).
public final class EventLoop: @unchecked Sendable {
    /// The libuv loop; touch only on the loop thread.
    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    private let wakeup: UnsafeMutablePointer<uv_async_t>
    private let beforePoll: UnsafeMutablePointer<uv_prepare_t>
    private let afterPoll: UnsafeMutablePointer<uv_check_t>
    private let pendingLocalWork: UnsafeMutablePointer<uv_idle_t>
    /// Active while callers on this loop await answers, for a short while after each call
    /// goes out (`EventLoop+AnswerPolling.swift`); loop thread only, like the two below.
    let answerPolling: UnsafeMutablePointer<uv_idle_t>
    /// Calls of this loop's clients awaiting their answers.
    var answersAwaited = 0
    /// When the loop stops polling for answers and may sleep again.
    var answerPollingEndsNs: UInt64 = 0
    /// Work handed in from other threads, and whether the loop still takes any.
    private let queue = Mutex<(open: Bool, work: [() -> Void])>((true, []))
    private let finished = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    private let startedThread = Mutex<pthread_t?>(nil)
    /// The loop thread, fixed once `init` returns.
    private var loopThread = pthread_t()
    /// Work handed in on the loop thread itself: run in this iteration, no wakeup needed.
    private var localWork: [LocalWork] = []
    /// The batch of local work being run, kept between batches with its storage so that
    /// taking a batch allocates nothing (likewise `flushing`).
    private var runningWork: [LocalWork] = []

    /// A closure, or a task's job (kept as it is: wrapping each job in a closure would cost an
    /// allocation per task step).
    private enum LocalWork {
        case closure(() -> Void)
        case job(UnownedJob)
    }
    /// Connections with buffered output, flushed once per loop iteration (loop thread only).
    var connectionsToFlush: [Connection] = []
    /// Every connection not yet closed, which a stopping loop closes as their owners would, so
    /// that the owners hear of it (loop thread only).
    var openConnections: [ObjectIdentifier: Connection] = [:]
    private var flushing: [Connection] = []
    /// Work on libuv's thread pool not yet finished (loop thread only; `EventLoop+Offload.swift`).
    var offloadedWork: Set<UnsafeMutablePointer<uv_work_t>> = []
    /// Ends a stopping loop whose offloaded work still runs after its grace (loop thread only).
    var offloadGraceTimer: UnsafeMutablePointer<uv_timer_t>?
    private(set) var stopping = false

    /// Starts a loop thread.
    /// - Throws: `UVError` when libuv cannot set up the loop.
    public init() throws {
        // A peer that goes away must surface as EPIPE on the write, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        uvLoop = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        beforePoll = .allocate(capacity: 1)
        afterPoll = .allocate(capacity: 1)
        pendingLocalWork = .allocate(capacity: 1)
        answerPolling = .allocate(capacity: 1)
        try uvCheck(uv_loop_init(uvLoop), "uv_loop_init")
        try uvCheck(uv_async_init(uvLoop, wakeup, { handle in EventLoop.owner(of: handle!).drainQueue() }), "uv_async_init")
        uv_prepare_init(uvLoop, beforePoll)
        uv_check_init(uvLoop, afterPoll)
        uv_idle_init(uvLoop, pendingLocalWork)
        uv_idle_init(uvLoop, answerPolling)
        let unmanaged = Unmanaged.passUnretained(self).toOpaque()
        wakeup.pointee.data = unmanaged
        beforePoll.pointee.data = unmanaged
        afterPoll.pointee.data = unmanaged
        pendingLocalWork.pointee.data = unmanaged
        answerPolling.pointee.data = unmanaged
        // Writes buffered by callbacks go out right after the poll phase that produced them, and
        // writes buffered by timers go out before the loop blocks again.
        uv_prepare_start(beforePoll) { handle in EventLoop.owner(of: handle!).flushConnections() }
        uv_check_start(afterPoll) { handle in
            let loop = EventLoop.owner(of: handle!)
            loop.runLocalWork()
            loop.flushConnections()
        }
        uv_unref(beforePoll.reinterpreted(as: uv_handle_t.self))
        uv_unref(afterPoll.reinterpreted(as: uv_handle_t.self))
        uv_unref(pendingLocalWork.reinterpreted(as: uv_handle_t.self))
        uv_unref(answerPolling.reinterpreted(as: uv_handle_t.self))

        // Detached: a loop that stopped leaves no thread, and no stack, behind.
        try startDetachedThread(named: "omx-loop") { [self] in
            startedThread.withLock { $0 = pthread_self() }
            uv_run(uvLoop, UV_RUN_DEFAULT)
            didFinish()
        }
        while startedThread.withLock({ $0 }) == nil { sched_yield() }
        loopThread = startedThread.withLock { $0! }
    }

    static func owner<H>(of handle: UnsafeMutablePointer<H>) -> EventLoop {
        let data = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self).pointee.data
        return Unmanaged<EventLoop>.fromOpaque(data!).takeUnretainedValue()
    }

    /// True on the loop's own thread.
    public var inLoop: Bool { pthread_equal(loopThread, pthread_self()) != 0 }

    /// Runs `work` on the loop thread, soon; callable from any thread.
    /// - Returns: false, and drops `work`, when the loop has been shut down.
    @discardableResult
    public func execute(_ work: @escaping () -> Void) -> Bool {
        if inLoop && !stopping {
            addLocalWork(.closure(work))
            return true
        }
        return queue.withLock { queue in
            guard queue.open else { return false }
            queue.work.append(work)
            uv_async_send(wakeup)
            return true
        }
    }

    /// Runs a task's job on the loop thread, soon (see `EventLoop+Executor.swift`); once the
    /// loop has stopped, on Swift's global executor, so that the task still ends (a call the
    /// stopping loop failed must reach its caller).
    func runSoon(_ job: UnownedJob) {
        if inLoop && !stopping {
            addLocalWork(.job(job))
        } else if !execute({ [unowned self] in job.runSynchronously(on: asUnownedTaskExecutor()) }) {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        }
    }

    private func addLocalWork(_ work: LocalWork) {
        localWork.append(work)
        // An active idle handle keeps the loop from blocking in poll until the work has run.
        if localWork.count == 1 { uv_idle_start(pendingLocalWork) { handle in EventLoop.owner(of: handle!).runLocalWork() } }
    }

    /// Runs `work` on the loop thread and returns its result to the calling task.
    /// - Throws: what `work` throws, or `UVError` (ECANCELED) when the loop has been shut down.
    public func submit<T>(_ work: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let accepted = execute { continuation.resume(with: Result { try work() }) }
            if !accepted { continuation.resume(throwing: UVError(code: UV_ECANCELED.rawValue, operation: "event loop stopped")) }
        }
    }

    private func drainQueue() {
        let work = queue.withLock { queue -> [() -> Void] in
            let taken = queue.work
            queue.work.removeAll(keepingCapacity: true)
            return taken
        }
        for item in work { item() }
        if stopping { closeEverything() }
    }

    /// Runs `work` now when called on the loop thread, else hands it to the loop.
    /// - Returns: false, and drops `work`, when the loop has been shut down.
    @discardableResult
    public func run(_ work: @escaping () -> Void) -> Bool {
        guard inLoop else { return execute(work) }
        work()
        return true
    }

    private func runLocalWork() {
        guard !localWork.isEmpty else {
            uv_idle_stop(pendingLocalWork)
            return
        }
        swap(&localWork, &runningWork)
        defer { runningWork.removeAll(keepingCapacity: true) }
        for item in runningWork {
            switch item {
            case let .closure(closure): closure()
            case let .job(job): job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }

    func scheduleFlush(_ connection: Connection) {
        connectionsToFlush.append(connection)
    }

    private func flushConnections() {
        guard !connectionsToFlush.isEmpty else { return }
        swap(&connectionsToFlush, &flushing)
        defer { flushing.removeAll(keepingCapacity: true) }
        for connection in flushing { connection.flush() }
    }

    /// Stops the loop: every handle still open is closed, the thread ends, and the call returns
    /// once it has. Owners should close their handles first (servers drain, clients close); an
    /// owner's close of a handle the loop closed meanwhile does nothing.
    public func shutdown() async {
        execute { [self] in
            stopping = true
            closeEverything()
        }
        await withCheckedContinuation { continuation in
            let alreadyDone = finished.withLock { state -> Bool in
                if state.done { return true }
                state.waiters.append(continuation)
                return false
            }
            if alreadyDone { continuation.resume() }
        }
    }

    private func closeEverything() {
        let remaining = queue.withLock { queue -> [() -> Void] in
            queue.open = false
            defer { queue.work = [] }
            return queue.work
        }
        for item in remaining { item() }
        runLocalWork()
        flushConnections()
        let cancelled = UVError(code: UV_ECANCELED.rawValue, operation: "event loop stopped")
        for connection in Array(openConnections.values) { connection.close(cancelled) }
        // Every handle but the grace timer of offloaded work, which closes itself.
        uv_walk(uvLoop, { handle, graceTimer in
            guard let handle, uv_is_closing(handle) == 0, UnsafeMutableRawPointer(handle) != graceTimer else { return }
            uv_close(handle, nil)
        }, offloadGraceTimer.map { UnsafeMutableRawPointer($0) })
        stopWaitingForOffloadedWork()
    }

    private func didFinish() {
        uv_loop_close(uvLoop)
        let waiters = finished.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.done = true
            let waiters = state.waiters
            state.waiters = []
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
