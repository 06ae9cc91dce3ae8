/// Renders services' metrics in the Prometheus text exposition format (version 0.0.4): one
/// `# HELP` and `# TYPE` per metric name, then its series, each labelled with the node and
/// service (and instance for FSGateway) it came from.
public enum PrometheusText {
    /// - Parameter answers: `Stats` answers of one or more service instances.
    public static func render(_ answers: [StatsResponse]) -> String {
        var families: [String: (help: String, kind: Metric.Kind, lines: [String])] = [:]
        var order: [String] = []
        for answer in answers.sorted(by: { ($0.nodeID, $0.service, $0.instance) < ($1.nodeID, $1.service, $1.instance) }) {
            var origin = [("node", String(answer.nodeID)), ("service", answer.service)]
            if answer.service == ServiceKind.fsgateway.rawValue { origin.append(("instance", String(answer.instance))) }
            for metric in answer.metrics {
                if families[metric.name] == nil {
                    families[metric.name] = (metric.help, metric.kind, [])
                    order.append(metric.name)
                }
                families[metric.name]!.lines += lines(of: metric, labels: origin + metric.labels)
            }
        }
        var text = ""
        for name in order.sorted() {
            let family = families[name]!
            text += "# HELP \(name) \(escapeHelp(family.help))\n"
            text += "# TYPE \(name) \(["counter", "gauge", "histogram"][family.kind.rawValue])\n"
            for line in family.lines { text += line + "\n" }
        }
        return text
    }

    private static func lines(of metric: Metric, labels: [(String, String)]) -> [String] {
        guard metric.kind == .histogram else { return ["\(metric.name)\(format(labels)) \(format(metric.value))"] }
        var lines: [String] = []
        for (bound, count) in zip(metric.bounds, metric.buckets) {
            lines.append("\(metric.name)_bucket\(format(labels + [("le", format(bound))])) \(count)")
        }
        lines.append("\(metric.name)_bucket\(format(labels + [("le", "+Inf")])) \(metric.count)")
        lines.append("\(metric.name)_sum\(format(labels)) \(format(metric.value))")
        lines.append("\(metric.name)_count\(format(labels)) \(metric.count)")
        return lines
    }

    private static func format(_ labels: [(String, String)]) -> String {
        labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// Whole numbers without a fraction; others as Swift prints a Double (Prometheus reads both).
    private static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    private static func escapeLabel(_ value: String) -> String {
        value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }

    private static func escapeHelp(_ value: String) -> String {
        value.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }
}

extension String {
    /// Every occurrence of `target` replaced, without Foundation.
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self { if character == target { result += replacement } else { result.append(character) } }
        return result
    }
}
