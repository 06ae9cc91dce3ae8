import CMigrator
import Dispatch
import Glibc
import Logging
import Shared

/// Every exec on this host made inside a job, from the kernel's process events (the proc
/// connector, which needs root). Each exec is reported with the job (the spool name of the
/// nearest omx-jobinit ancestor), that init's host pid and the process's pid inside the job's
/// namespace. Execs outside jobs are dropped here, off the Migrator's actor.
final class ExecEvents: @unchecked Sendable {
    /// One exec inside a job.
    struct Exec: Sendable {
        let job: String
        let initPID: Int32
        let namespacePID: Int32
    }

    private let source: DispatchSourceRead

    /// Subscribes and starts reporting to `onExec`, on a queue of its own.
    /// - Throws: `ConfigError` when the kernel refuses the subscription.
    init(logger: Logger, onExec: @escaping @Sendable (Exec) -> Void) throws {
        let fd = omx_exec_events_open()
        guard fd >= 0 else {
            throw ConfigError("cannot follow execs through the kernel's process events: \(String(cString: strerror(-fd)))")
        }
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue(label: "omx-exec-events"))
        source.setEventHandler {
            var pids = [Int32](repeating: 0, count: 256)
            while true {
                let count = omx_exec_events_next(fd, &pids, Int32(pids.count))
                if count == -ENOBUFS {
                    logger.warning("the kernel dropped process events: /mfs/lastexec may miss an exec")
                    continue
                }
                guard count >= 0 else { return }
                for pid in pids.prefix(Int(count)) {
                    if let exec = ExecEvents.exec(of: pid) { onExec(exec) }
                }
            }
        }
        source.resume()
    }

    /// The job `pid` runs in and its pid there, or nil for a process outside jobs (or gone).
    static func exec(of pid: Int32) -> Exec? {
        // Every job has a PID namespace of its own: a process of the host's namespace is
        // dropped after one read, however busy the host is with execs.
        guard let pids = namespacePIDs(of: pid), pids.count > 1, let namespacePID = pids.last,
              let (job, initPID) = enclosingJob(of: pid) else { return nil }
        return Exec(job: job, initPID: initPID, namespacePID: namespacePID)
    }
}
