import Shared
import XCTest

final class MetricsTests: XCTestCase {
    func testTheRegistryCountsSetsAndBucketsObservations() {
        let metrics = MetricsRegistry()
        metrics.add("calls_total", help: "Calls.", labels: [("method", "Ping")])
        metrics.add("calls_total", help: "Calls.", labels: [("method", "Ping")], 2)
        metrics.add("calls_total", help: "Calls.", labels: [("method", "Health")])
        metrics.set("load", help: "Load.", 0.5)
        metrics.set("load", help: "Load.", 0.25)
        metrics.observe("freeze_seconds", help: "Freeze.", 0.2, bounds: [0.1, 1])
        metrics.observe("freeze_seconds", help: "Freeze.", 3, bounds: [0.1, 1])
        XCTAssertEqual(metrics.snapshot(), [
            Metric(name: "calls_total", help: "Calls.", kind: .counter, labels: [("method", "Health")], value: 1),
            Metric(name: "calls_total", help: "Calls.", kind: .counter, labels: [("method", "Ping")], value: 3),
            Metric(name: "freeze_seconds", help: "Freeze.", kind: .histogram, value: 3.2, count: 2, bounds: [0.1, 1], buckets: [0, 1]),
            Metric(name: "load", help: "Load.", kind: .gauge, value: 0.25),
        ])
    }

    func testHandlesUpdateTheSeriesTheirNameAndLabelsName() {
        let metrics = MetricsRegistry()
        let calls = metrics.counter("calls_total", help: "Calls.", labels: [("method", "Ping")])
        let waits = metrics.histogram("wait_seconds", help: "Waits.", bounds: [0.1, 1])
        XCTAssertEqual(metrics.snapshot(), [
            Metric(name: "calls_total", help: "Calls.", kind: .counter, labels: [("method", "Ping")], value: 0),
            Metric(name: "wait_seconds", help: "Waits.", kind: .histogram, value: 0, count: 0, bounds: [0.1, 1], buckets: [0, 0]),
        ], "a handle's series exists from its making")
        calls.add()
        metrics.add("calls_total", help: "Calls.", labels: [("method", "Ping")], 2)
        calls.add(4)
        waits.observe(0.5)
        metrics.observe("wait_seconds", help: "Waits.", 0.05, bounds: [0.1, 1])
        XCTAssertEqual(metrics.snapshot(), [
            Metric(name: "calls_total", help: "Calls.", kind: .counter, labels: [("method", "Ping")], value: 7),
            Metric(name: "wait_seconds", help: "Waits.", kind: .histogram, value: 0.55, count: 2, bounds: [0.1, 1], buckets: [1, 2]),
        ])
    }

    func testStatsTravelAsProtobufAndRenderAsPrometheusText() throws {
        let discovery = StatsResponse(service: "discovery", nodeID: 2, instance: 0, metrics: [
            Metric(name: "omx_rpc_calls_total", help: "Calls answered.", kind: .counter, labels: [("method", "Ping"), ("status", "OK")], value: 4),
        ])
        let gateway = StatsResponse(service: "fsgateway", nodeID: 1, instance: 1, metrics: [
            Metric(name: "omx_rpc_calls_total", help: "Calls answered.", kind: .counter, labels: [("method", "FSGateway.Read"), ("status", "OK")], value: 7),
            Metric(name: "omx_wait_seconds", help: "Waits, \"quoted\"\\.", kind: .histogram, labels: [("path", "a\"b")], value: 0.75, count: 3, bounds: [0.5, 1], buckets: [2, 3]),
        ])
        XCTAssertEqual(try StatsResponse(wire: gateway.wire()), gateway)
        XCTAssertEqual(
            PrometheusText.render([discovery, try StatsResponse(wire: gateway.wire())]),
            """
            # HELP omx_rpc_calls_total Calls answered.
            # TYPE omx_rpc_calls_total counter
            omx_rpc_calls_total{node="1",service="fsgateway",instance="1",method="FSGateway.Read",status="OK"} 7
            omx_rpc_calls_total{node="2",service="discovery",method="Ping",status="OK"} 4
            # HELP omx_wait_seconds Waits, "quoted"\\\\.
            # TYPE omx_wait_seconds histogram
            omx_wait_seconds_bucket{node="1",service="fsgateway",instance="1",path="a\\"b",le="0.5"} 2
            omx_wait_seconds_bucket{node="1",service="fsgateway",instance="1",path="a\\"b",le="1"} 3
            omx_wait_seconds_bucket{node="1",service="fsgateway",instance="1",path="a\\"b",le="+Inf"} 3
            omx_wait_seconds_sum{node="1",service="fsgateway",instance="1",path="a\\"b"} 0.75
            omx_wait_seconds_count{node="1",service="fsgateway",instance="1",path="a\\"b"} 3

            """)
    }
}
