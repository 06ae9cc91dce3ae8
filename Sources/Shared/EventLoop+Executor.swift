/// The loop as a Swift `TaskExecutor`: a task that prefers it (`Task(executorPreference: loop)`,
/// `withTaskExecutorPreference(loop)`) runs its non-isolated code on the loop thread, so its RPC
/// calls and the server's handlers reach the sockets without waking another thread. Such code
/// must not block: it shares the thread with every socket of the process.
extension EventLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        runSoon(UnownedJob(job))
    }
}
