import Shared

extension FileGateway {
    /// Handles to the series of the file data moved and the reads made.
    struct IoMetrics: Sendable {
        let readBytes: MetricsRegistry.Counter
        let writtenBytes: MetricsRegistry.Counter
        /// Reads answered from the page cache (on the loop thread) and from the disk (on the pool).
        let readsFromCache: MetricsRegistry.Counter
        let readsFromDisk: MetricsRegistry.Counter

        init(_ metrics: MetricsRegistry) {
            readBytes = metrics.counter("omx_fs_read_bytes_total", help: "File bytes this gateway read for its callers.")
            writtenBytes = metrics.counter("omx_fs_written_bytes_total", help: "File bytes this gateway wrote for its callers.")
            let reads = { (from: String) in
                metrics.counter(
                    "omx_fs_reads_total", help: "Reads answered from the page cache (on the loop thread) or from the disk (on the pool).",
                    labels: [("from", from)])
            }
            readsFromCache = reads("cache")
            readsFromDisk = reads("disk")
        }
    }
}
