import ArgumentParser
import OMXBench
import Shared

/// `omx bench`: benchmarks, each against a baseline measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measures OMX against a baseline in the same run and prints ratios and absolute figures.",
        subcommands: [RPC.self, RPCServerCommand.self])

    /// `omx bench rpc`.
    struct RPC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rpc",
            abstract: "RPC latency and throughput between two processes over TCP and a Unix socket, against raw sockets.")

        @Option(help: "Sequential calls for the latency figures.")
        var pings = 5_000

        @Option(help: "Seconds for each throughput figure.")
        var seconds = 2.0

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            var options = RPCBenchmark.Options()
            options.pingCount = pings
            options.seconds = seconds
            let report = try await RPCBenchmark(options: options).run { line in
                if !json { print("... \(line)") }
            }
            if json {
                printJSON(report)
                return
            }
            print("\nomx bench rpc: OMX RPC (envelope, HMAC on TCP, libuv) vs raw blocking sockets (same frames), 2 processes")
            let rows = report.rows.map { row in
                [row.transport, row.test, format(row.omx, row.unit), format(row.raw, row.unit), ratio(row)]
            }
            print(formatTable(header: ["TRANSPORT", "TEST", "OMX", "RAW", "OMX/RAW"], rows: rows), terminator: "")
            if let rss = report.idleServiceRSSKiB {
                print("idle omx-discovery resident memory: \(String(format: rss, decimals: 1)) MiB (target: under 20 MiB)")
            }
        }

        private func format(_ value: Double, _ unit: String) -> String {
            unit == "us" ? "\(String(format: value, decimals: 1)) us" : "\(Int(value.rounded())) \(unit)"
        }

        private func ratio(_ row: RPCBenchmark.Row) -> String {
            "\(String(format: row.ratio, decimals: 2))x"
        }
    }

    /// The server process `omx bench rpc` starts.
    struct RPCServerCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rpc-server", abstract: "The echo server `omx bench rpc` runs in a second process.",
            shouldDisplay: false)

        @Option var port: Int
        @Option var unix: String
        @Option var map: String
        @Option var key: String

        func run() async throws {
            try await BenchServer.serve(
                tcpPort: port, unixPath: unix, map: try ClusterMap.load(path: map), key: try ClusterKey.load(from: key))
        }
    }
}

extension String {
    /// `value` with `decimals` digits after the point (`value / 1024` when given KiB as Int).
    init(format value: Double, decimals: Int) {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int((value * scale).rounded())
        let whole = scaled / Int(scale)
        let fraction = String(abs(scaled) % Int(scale))
        self = decimals == 0 ? "\(whole)" : "\(whole).\(String(repeating: "0", count: decimals - fraction.count))\(fraction)"
    }

    /// KiB as MiB with `decimals` digits.
    init(format kib: Int, decimals: Int) {
        self.init(format: Double(kib) / 1024, decimals: decimals)
    }
}
