import Synchronization

/// The counters, gauges and histograms of one service process, served by its `Stats` call and
/// printed by `omx metrics` in the Prometheus text format. Thread-safe; each update is one
/// short lock. Code that updates one series on every call takes a handle to it (`counter`,
/// `histogram`) and skips building and looking up its labels each time.
public final class MetricsRegistry: Sendable {
    /// Bucket bounds for durations in seconds, from 1 ms to 1 minute.
    public static let secondsBounds: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    private struct Key: Hashable {
        let name: String
        let labels: [String]
    }

    private struct Family {
        let help: String
        let kind: Metric.Kind
        let bounds: [Double]
    }

    /// One series' values, shared by the registry and the handles to it; changed only under
    /// the registry's lock.
    fileprivate final class Series: @unchecked Sendable {
        var value = 0.0
        var count: UInt64 = 0
        var buckets: [UInt64]

        init(buckets: Int) {
            self.buckets = [UInt64](repeating: 0, count: buckets)
        }

        func observe(_ observed: Double, bounds: [Double]) {
            value += observed
            count += 1
            for (index, bound) in bounds.enumerated() where observed <= bound { buckets[index] += 1 }
        }
    }

    /// A counter's series, to add to without naming it again.
    public struct Counter: Sendable {
        fileprivate let registry: MetricsRegistry
        fileprivate let series: Series

        /// Adds `amount` to the counter.
        public func add(_ amount: Double = 1) {
            registry.state.withLock { _ in series.value += amount }
        }
    }

    /// A histogram's series, to record in without naming it again.
    public struct Histogram: Sendable {
        fileprivate let registry: MetricsRegistry
        fileprivate let series: Series
        fileprivate let bounds: [Double]

        /// Records one observation.
        public func observe(_ value: Double) {
            registry.state.withLock { _ in series.observe(value, bounds: bounds) }
        }
    }

    private let state = Mutex<(families: [String: Family], series: [Key: Series])>(([:], [:]))

    public init() {}

    /// Adds `amount` to counter `name` with `labels`.
    public func add(_ name: String, help: String, labels: [(String, String)] = [], _ amount: Double = 1) {
        update(name, help: help, kind: .counter, labels: labels) { $0.value += amount }
    }

    /// Sets gauge `name` with `labels` to `value`.
    public func set(_ name: String, help: String, labels: [(String, String)] = [], _ value: Double) {
        update(name, help: help, kind: .gauge, labels: labels) { $0.value = value }
    }

    /// Records one observation of histogram `name` (durations in seconds by default).
    public func observe(_ name: String, help: String, labels: [(String, String)] = [], _ value: Double, bounds: [Double] = secondsBounds) {
        update(name, help: help, kind: .histogram, labels: labels, bounds: bounds) { $0.observe(value, bounds: bounds) }
    }

    /// A handle to counter `name` with `labels`, which exists from now on (at 0).
    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> Counter {
        Counter(registry: self, series: update(name, help: help, kind: .counter, labels: labels) { _ in })
    }

    /// A handle to histogram `name` with `labels` (durations in seconds by default), which
    /// exists from now on (empty).
    public func histogram(_ name: String, help: String, labels: [(String, String)] = [], bounds: [Double] = secondsBounds) -> Histogram {
        Histogram(registry: self, series: update(name, help: help, kind: .histogram, labels: labels, bounds: bounds) { _ in }, bounds: bounds)
    }

    /// Every series, sorted by name and labels.
    public func snapshot() -> [Metric] {
        state.withLock { state in
            state.series.map { key, series in
                let family = state.families[key.name]!
                let labels = stride(from: 0, to: key.labels.count, by: 2).map { (key.labels[$0], key.labels[$0 + 1]) }
                return Metric(
                    name: key.name, help: family.help, kind: family.kind, labels: labels, value: series.value, count: series.count,
                    bounds: family.bounds, buckets: series.buckets)
            }
        }
        .sorted { ($0.name, $0.labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")) < ($1.name, $1.labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")) }
    }

    /// Applies `change` to the series of `name` with `labels`, made first if new; returns it.
    @discardableResult
    private func update(
        _ name: String, help: String, kind: Metric.Kind, labels: [(String, String)], bounds: [Double] = [], _ change: (Series) -> Void
    ) -> Series {
        let key = Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        return state.withLock { state in
            if state.families[name] == nil { state.families[name] = Family(help: help, kind: kind, bounds: bounds) }
            let series: Series
            if let existing = state.series[key] {
                series = existing
            } else {
                series = Series(buckets: bounds.count)
                state.series[key] = series
            }
            change(series)
            return series
        }
    }
}
