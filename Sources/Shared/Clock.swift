import Glibc

/// Milliseconds since the Unix epoch, from the wall clock.
public func wallClockMs() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec) * 1_000 + UInt64(now.tv_nsec) / 1_000_000
}

/// Nanoseconds from a monotonic clock, for measuring intervals.
public func monotonicNs() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// The monotonic clock `ms` milliseconds from now, for a deadline (the farthest deadline there
/// is when that lies past the clock's range: a timeout of years means no timeout).
public func monotonicNs(afterMs ms: UInt64) -> UInt64 {
    let (ns, tooLong) = ms.multipliedReportingOverflow(by: 1_000_000)
    let (deadline, pastTheEnd) = monotonicNs().addingReportingOverflow(ns)
    return tooLong || pastTheEnd ? .max : deadline
}

/// The whole milliseconds from `now` until `deadlineNs` (monotonic), rounded up; 0 once passed.
func millisecondsLeft(until deadlineNs: UInt64, from now: UInt64) -> UInt64 {
    deadlineNs > now ? (deadlineNs - now - 1) / 1_000_000 + 1 : 0
}

extension Duration {
    /// The duration in whole milliseconds (negative durations count as 0, those longer than
    /// `UInt64.max` milliseconds as that).
    public var milliseconds: UInt64 { wholeUnits(perSecond: 1_000) }

    /// The duration in whole nanoseconds (0 when negative, `UInt64.max` when longer).
    public var nanoseconds: UInt64 { wholeUnits(perSecond: 1_000_000_000) }

    private func wholeUnits(perSecond units: UInt64) -> UInt64 {
        // A negative duration under a second has 0 seconds and negative attoseconds.
        guard self > .zero else { return 0 }
        let (seconds, attoseconds) = components
        let (whole, tooLong) = UInt64(seconds).multipliedReportingOverflow(by: units)
        let (total, pastMax) = whole.addingReportingOverflow(UInt64(attoseconds) / (1_000_000_000_000_000_000 / units))
        return tooLong || pastMax ? .max : total
    }
}

/// `nanoseconds` for a person, to a tenth of a second: "30.2 s".
func secondsText(_ nanoseconds: UInt64) -> String {
    let tenths = (nanoseconds + 50_000_000) / 100_000_000
    return "\(tenths / 10).\(tenths % 10) s"
}
