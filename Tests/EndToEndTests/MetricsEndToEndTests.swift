import Foundation
import Shared
import XCTest

/// `omx metrics` against a live 2-node cluster after real work: calls and errors per method,
/// a migration with its freeze and total time and bytes, file I/O, membership.
final class MetricsEndToEndTests: XCTestCase {
    func testEveryServiceCountsWhatItDidAndOmxMetricsPrintsValidPrometheusText() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 58, nodes: 2, gateways: 2)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let job = try cluster.run(["/bin/sh", "-c", "while :; do sleep 0.05; done"])
        let migrated = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(migrated.status, 0, migrated.stderr)
        let file = "\(cluster.dir)/metrics-note"
        try "through the mount\n".write(toFile: "\(cluster.dir)/node-1/mfs/2\(file)", atomically: false, encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: "\(cluster.dir)/node-2/mfs/2\(file)", encoding: .utf8), "through the mount\n")
        let missing = cluster.omx(["kill", "1.999"])
        XCTAssertNotEqual(missing.status, 0)

        let all = cluster.omx(["metrics", "--all"])
        XCTAssertEqual(all.status, 0, all.stderr)
        XCTAssertEqual(all.stderr, "")
        try checkExposition(all.stdout)
        let lines = Set(all.stdout.split(separator: "\n").map(String.init))
        for expected in [
            #"omx_migrations_total{node="1",service="migrator",outcome="committed"} 1"#,
            #"omx_migration_freeze_seconds_count{node="1",service="migrator"} 1"#,
            #"omx_migration_total_seconds_count{node="1",service="migrator"} 1"#,
            #"omx_migrations_received_total{node="2",service="migrator"} 1"#,
            #"omx_jobs_started_total{node="1",service="migrator"} 1"#,
            #"omx_rpc_calls_total{node="1",service="migrator",method="Migrator.Kill",status="NOT_FOUND"} 1"#,
            #"omx_members{node="2",service="discovery",state="alive"} 2"#,
        ] {
            XCTAssertTrue(lines.contains(expected), "omx metrics --all prints \(expected)")
        }
        let sent = all.stdout.split(separator: "\n").first { $0.hasPrefix(#"omx_migration_sent_bytes_total{node="1",service="migrator"}"#) }
        XCTAssertGreaterThan(sent.flatMap { Double($0.split(separator: " ").last!) } ?? 0, 100_000, "the image bytes sent are counted")
        let written = all.stdout.split(separator: "\n").filter { $0.hasPrefix(#"omx_fs_written_bytes_total{node="2",service="fsgateway""#) }
        XCTAssertEqual(written.compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +), 18, "node 2's gateways wrote the 18 bytes")
        XCTAssertTrue(all.stdout.contains(#"service="fsgateway",instance="1","#) || all.stdout.contains(#"service="fsgateway",instance="0","#))
        XCTAssertTrue(all.stdout.range(of: #"omx_rpc_calls_total\{node="2",service="fsgateway",instance="[01]",method="FSGateway.Write",status="OK"\} [1-9]"#, options: .regularExpression) != nil)

        // One node over TCP: only its own series.
        let second = cluster.omx(["metrics", "--node", "2"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertFalse(second.stdout.contains(#"node="1""#))
        XCTAssertTrue(second.stdout.contains(#"omx_resident_bytes{node="2",service="migrator"}"#))
        _ = cluster.omx(["kill", "-KILL", job])

        // A node that is down is named, and what answered is still printed.
        cluster.kill9(2, "discovery")
        let partial = cluster.omx(["metrics", "--all"])
        XCTAssertEqual(partial.status, 0)
        XCTAssertTrue(partial.stderr.contains("omx metrics: node 2: Discovery:"), partial.stderr)
        XCTAssertTrue(partial.stdout.contains(#"node="1""#))
    }

    /// The text format's rules: a HELP and a TYPE once per family before its samples, the
    /// samples of a family together, every sample line `name{labels} value`.
    private func checkExposition(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var finished: Set<String> = []
        var current = ""
        let sample = try NSRegularExpression(pattern: #"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInfNa]+$"#)
        for row in text.split(separator: "\n").map(String.init) {
            if row.hasPrefix("# HELP ") {
                let name = String(row.dropFirst(7).prefix { $0 != " " })
                XCTAssertFalse(finished.contains(name), "family \(name) appears twice", file: file, line: line)
                finished.insert(current)
                current = name
                continue
            }
            if row.hasPrefix("# TYPE ") {
                XCTAssertTrue(row.hasPrefix("# TYPE \(current) "), "TYPE follows HELP: \(row)", file: file, line: line)
                continue
            }
            let match = sample.firstMatch(in: row, range: NSRange(row.startIndex..., in: row))
            XCTAssertNotNil(match, "a valid sample line: \(row)", file: file, line: line)
            let name = String(row.prefix { $0 != "{" && $0 != " " })
            XCTAssertTrue(name == current || name.hasPrefix(current + "_"), "\(name) belongs to the family above it (\(current))", file: file, line: line)
        }
    }
}
