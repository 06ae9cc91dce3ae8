import CLibUV
import Glibc

/// Polling for answers instead of sleeping, for a short while after a call goes out.
///
/// On a virtual machine whose idle CPUs halt (no cpuidle driver polls first), waking a halted
/// CPU costs more than a whole round trip between two processes: measured on this machine kind,
/// a loopback call took 55-70 us with the caller's CPU halted for the answer and 21-29 us with
/// it kept busy. So a loop whose clients await answers keeps polling its sockets (an active idle
/// handle makes libuv poll with no timeout) until every answer came or the window after the last
/// call sent has passed, yielding its CPU to any other thread that wants it between two polls.
/// The kernel's own halt polling (cpuidle-haltpoll) does the same below every process, when
/// it is on.
extension EventLoop {
    /// Notes a call of one of this loop's clients that awaits its answer.
    func answerAwaited() {
        answersAwaited += 1
    }

    /// Notes `count` awaited answers that came, or calls that ended without one.
    func answersEnded(_ count: Int = 1) {
        answersAwaited -= count
        assert(answersAwaited >= 0, "more answers ended than were awaited")
    }

    /// Polls for answers instead of sleeping until `windowNs` from now (or later, if another
    /// call's window already runs longer), or until no answer is awaited (loop thread only; a
    /// window of 0 does nothing).
    func pollForAnswers(windowNs: UInt64) {
        guard windowNs > 0 else { return }
        answerPollingEndsNs = max(answerPollingEndsNs, monotonicNs() &+ windowNs)
        guard uv_is_active(answerPolling.reinterpreted(as: uv_handle_t.self)) == 0 else { return }
        uv_idle_start(answerPolling) { handle in
            let loop = EventLoop.owner(of: handle!)
            if loop.answersAwaited <= 0 || monotonicNs() >= loop.answerPollingEndsNs {
                // The next call's window starts afresh, however long the last one's was.
                loop.answerPollingEndsNs = 0
                uv_idle_stop(handle)
            } else {
                sched_yield()
            }
        }
    }
}
