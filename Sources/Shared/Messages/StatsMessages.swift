import OMXProto

/// `omx.StatsRequest`.
public struct StatsRequest: WireMessage, Equatable {
    public init() {}

    static let codec = ProtoCodec<Omx__StatsRequest>(
        name: "omx.StatsRequest", initialize: { omx__stats_request__init($0) },
        packedSize: { omx__stats_request__get_packed_size($0) }, pack: { omx__stats_request__pack($0, $1) },
        unpack: { omx__stats_request__unpack($0, $1, $2) }, free: { omx__stats_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try StatsRequest.codec.decode(bytes) { _ in StatsRequest() }
    }

    public func wire() -> [UInt8] { StatsRequest.codec.encode { _, _ in } }
}

/// `omx.Metric`: one counter, gauge or histogram with its labels.
public struct Metric: Sendable, Equatable {
    public enum Kind: Int, Sendable {
        case counter = 0, gauge = 1, histogram = 2
    }

    public var name: String
    public var help: String
    public var kind: Kind
    /// Label names and values, in order.
    public var labels: [(String, String)]
    /// Counter and gauge: the value; histogram: the sum of observations.
    public var value: Double
    /// Histogram: how many observations.
    public var count: UInt64
    /// Histogram: each bucket's upper bound, ascending.
    public var bounds: [Double]
    /// Histogram: observations at or below each bound.
    public var buckets: [UInt64]

    public init(
        name: String, help: String, kind: Kind, labels: [(String, String)] = [], value: Double, count: UInt64 = 0, bounds: [Double] = [],
        buckets: [UInt64] = []
    ) {
        self.name = name
        self.help = help
        self.kind = kind
        self.labels = labels
        self.value = value
        self.count = count
        self.bounds = bounds
        self.buckets = buckets
    }

    public static func == (lhs: Metric, rhs: Metric) -> Bool {
        lhs.name == rhs.name && lhs.help == rhs.help && lhs.kind == rhs.kind && lhs.labels.elementsEqual(rhs.labels, by: ==)
            && lhs.value == rhs.value && lhs.count == rhs.count && lhs.bounds == rhs.bounds && lhs.buckets == rhs.buckets
    }

    static let codec = ProtoCodec<Omx__Metric>(
        name: "omx.Metric", initialize: { omx__metric__init($0) }, packedSize: { omx__metric__get_packed_size($0) },
        pack: { omx__metric__pack($0, $1) }, unpack: { omx__metric__unpack($0, $1, $2) }, free: { omx__metric__free_unpacked($0, $1) })
    static let labelCodec = ProtoCodec<Omx__MetricLabel>(
        name: "omx.MetricLabel", initialize: { omx__metric_label__init($0) }, packedSize: { omx__metric_label__get_packed_size($0) },
        pack: { omx__metric_label__pack($0, $1) }, unpack: { omx__metric_label__unpack($0, $1, $2) },
        free: { omx__metric_label__free_unpacked($0, $1) })

    func wire(in arena: CArena) -> UnsafeMutablePointer<Omx__Metric> {
        let message = arena.message(Metric.codec)
        message.pointee.name = arena.string(name)
        message.pointee.help = arena.string(help)
        message.pointee.kind = Omx__Metric__Kind(rawValue: UInt32(kind.rawValue))
        let labelArray = arena.array(of: UnsafeMutablePointer<Omx__MetricLabel>?.self, count: labels.count)
        for (index, (labelName, labelValue)) in labels.enumerated() {
            let label = arena.message(Metric.labelCodec)
            label.pointee.name = arena.string(labelName)
            label.pointee.value = arena.string(labelValue)
            labelArray[index] = label
        }
        message.pointee.n_labels = labels.count
        message.pointee.labels = labelArray
        message.pointee.value = value
        message.pointee.count = count
        let boundArray = arena.array(of: Double.self, count: bounds.count)
        for (index, bound) in bounds.enumerated() { boundArray[index] = bound }
        message.pointee.n_bounds = bounds.count
        message.pointee.bounds = boundArray
        let bucketArray = arena.array(of: UInt64.self, count: buckets.count)
        for (index, bucket) in buckets.enumerated() { bucketArray[index] = bucket }
        message.pointee.n_buckets = buckets.count
        message.pointee.buckets = bucketArray
        return message
    }

    init(wire message: Omx__Metric) {
        let labels: [(String, String)] = (0..<message.n_labels).compactMap { index in
            message.labels[index].map { (cString($0.pointee.name), cString($0.pointee.value)) }
        }
        self.init(
            name: cString(message.name), help: cString(message.help), kind: Kind(rawValue: Int(message.kind.rawValue)) ?? .gauge,
            labels: labels, value: message.value, count: message.count,
            bounds: message.n_bounds > 0 ? Array(UnsafeBufferPointer(start: message.bounds, count: message.n_bounds)) : [],
            buckets: message.n_buckets > 0 ? Array(UnsafeBufferPointer(start: message.buckets, count: message.n_buckets)) : [])
    }
}

/// `omx.StatsResponse`: every metric of one service instance.
public struct StatsResponse: WireMessage, Equatable {
    public var service: String
    public var nodeID: UInt32
    public var instance: UInt32
    public var metrics: [Metric]

    public init(service: String, nodeID: UInt32, instance: UInt32, metrics: [Metric]) {
        self.service = service
        self.nodeID = nodeID
        self.instance = instance
        self.metrics = metrics
    }

    static let codec = ProtoCodec<Omx__StatsResponse>(
        name: "omx.StatsResponse", initialize: { omx__stats_response__init($0) },
        packedSize: { omx__stats_response__get_packed_size($0) }, pack: { omx__stats_response__pack($0, $1) },
        unpack: { omx__stats_response__unpack($0, $1, $2) }, free: { omx__stats_response__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try StatsResponse.codec.decode(bytes) { message in
            StatsResponse(
                service: cString(message.service), nodeID: message.node_id, instance: message.instance,
                metrics: (0..<message.n_metrics).compactMap { index in message.metrics[index].map { Metric(wire: $0.pointee) } })
        }
    }

    public func wire() -> [UInt8] {
        StatsResponse.codec.encode { message, arena in
            message.service = arena.string(service)
            message.node_id = nodeID
            message.instance = instance
            let array = arena.array(of: UnsafeMutablePointer<Omx__Metric>?.self, count: metrics.count)
            for (index, metric) in metrics.enumerated() { array[index] = metric.wire(in: arena) }
            message.n_metrics = metrics.count
            message.metrics = array
        }
    }
}
