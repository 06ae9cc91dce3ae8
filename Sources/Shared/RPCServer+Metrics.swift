/// The metrics an RPC server keeps of the calls it answers.
extension RPCServer {
    /// The series a registered method's answers are counted in, when the server keeps metrics.
    func callSeries(_ method: String) -> (seconds: MetricsRegistry.Histogram, answered: MetricsRegistry.Counter)? {
        configuration.metrics.map { metrics in
            (metrics.histogram(RPCServer.secondsMetric, help: RPCServer.secondsHelp, labels: [("method", method)]),
             metrics.counter(RPCServer.callsMetric, help: RPCServer.callsHelp, labels: [("method", method), ("status", StatusCode.ok.description)]))
        }
    }

    /// Counts an answered call in the metrics, with its duration since `started`: through the
    /// handles of its method's `entry`, refusals and unknown methods by their labels.
    func count(_ method: String, _ entry: Entry?, status: StatusCode, started: UInt64) {
        guard let metrics = configuration.metrics else { return }
        let seconds = Double(monotonicNs() - started) / 1e9
        if let series = entry?.series {
            series.seconds.observe(seconds)
            if status == .ok { return series.answered.add() }
        }
        // Unknown names are counted together: a peer cannot grow the table at will.
        let method = entry == nil && method != SessionOffer.method ? "(unknown)" : method
        metrics.add(RPCServer.callsMetric, help: RPCServer.callsHelp, labels: [("method", method), ("status", status.description)])
        if entry == nil { metrics.observe(RPCServer.secondsMetric, help: RPCServer.secondsHelp, labels: [("method", method)], seconds) }
    }

    private static let callsMetric = "omx_rpc_calls_total"
    private static let callsHelp = "Calls answered, by method and status."
    private static let secondsMetric = "omx_rpc_call_seconds"
    private static let secondsHelp = "Time from a request's arrival to its response, by method."
}
