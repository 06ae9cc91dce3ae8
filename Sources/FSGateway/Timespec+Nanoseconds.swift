import Glibc

extension timespec {
    /// The time in nanoseconds since the epoch, clamped to what Int64 holds (the years 1677 to
    /// 2262): a file may carry any time its file system takes (`touch -d @10000000000`), and
    /// converting it must not overflow.
    var clampedNanoseconds: Int64 {
        let (seconds, overflow) = Int64(tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return tv_sec < 0 ? .min : .max }
        let (sum, sumOverflow) = seconds.addingReportingOverflow(Int64(tv_nsec))
        return sumOverflow ? .max : sum
    }

    /// The time `nanoseconds` after the epoch (before it when negative, with `tv_nsec` in
    /// 0..<1e9 as the kernel wants it).
    init(nanoseconds: Int64) {
        let (seconds, remainder) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        self.init(tv_sec: Int(remainder < 0 ? seconds - 1 : seconds), tv_nsec: Int(remainder < 0 ? remainder + 1_000_000_000 : remainder))
    }
}
