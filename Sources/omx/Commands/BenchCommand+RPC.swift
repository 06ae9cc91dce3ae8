import ArgumentParser
import OMXBench
import Shared

extension BenchCommand {
    /// `omx bench rpc`.
    struct RPC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rpc",
            abstract: "RPC latency and throughput between two processes over TCP and a Unix socket, against raw sockets.")

        @Option(help: "Sequential calls for the latency figures.")
        var pings = 5_000

        @Option(help: "Seconds for each throughput figure.")
        var seconds = 2.0

        @Option(help: "Times each test alternates OMX and raw, sharing out the calls and seconds.")
        var rounds = 5

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        }

        func run() async throws {
            var options = RPCBenchmark.Options()
            options.pingCount = pings
            options.seconds = seconds
            options.rounds = rounds
            let report = try await RPCBenchmark(options: options).run { line in
                if !json { print("... \(line)") }
            }
            if json {
                printJSON(report)
                return
            }
            print("\nomx bench rpc: OMX RPC (envelope, signed on TCP with session keys, libuv) vs raw blocking sockets (same frames), 2 processes")
            let rows = report.rows.map { row in
                [
                    row.transport, row.test, format(row.omx, row.unit), format(row.raw, row.unit), ratio(row),
                    cpu(row.omxCPUPerCallUs, user: row.omxUserCPUPerCallUs), cpu(row.rawCPUPerCallUs, user: row.rawUserCPUPerCallUs),
                ]
            }
            print(
                formatTable(header: ["TRANSPORT", "TEST", "OMX", "RAW", "OMX/RAW", "CPU/CALL OMX", "CPU/CALL RAW"], rows: rows),
                terminator: "")
            print("CPU/CALL: client and server CPU time per call, both processes together, and its user-mode part (the rest is the kernel's).")
            for transport in ["tcp", "unix"] {
                let pairings = report.pairings.filter { $0.transport == transport }
                guard !pairings.isEmpty else { continue }
                print("\n\(transport) ping-pong, where a call's time goes (every client against every server, alternating in the same rounds):")
                let rows = pairings.map { pairing in
                    [
                        pairing.client, pairing.server, "\(String(format: pairing.p50Us, decimals: 1)) us", "\(String(format: pairing.ratio, decimals: 2))x",
                        "\(String(format: pairing.p99Us, decimals: 1)) us", cpu(pairing.cpuPerCallUs, user: pairing.userPerCallUs),
                    ]
                }
                print(formatTable(header: ["CLIENT", "SERVER", "P50", "P50/RAW", "P99", "CPU/CALL"], rows: rows), terminator: "")
            }
            print(
                "OMX protocol in C (omx-rawbench): the same envelopes, signatures and checks as OMX's Swift runtime, written from proto/README.md;",
                "the bare libuv loop echoes frames with no envelope at all. A client named after a libuv loop calls from one, as OMX's client does:",
                "two C libuv loops are the floor of OMX at both ends. A Swift side's own cost is its time beyond its C counterpart's.",
                separator: "\n")
            if report.pinned { print("Clients ran on CPU 0 and servers on CPU 1, OMX and raw alike.") }
            print(
                report.swiftRuntimeLinkedIn
                    ? "The executables carry the Swift runtime (--static-swift-stdlib), as they are deployed."
                    : "The executables load the Swift runtime's shared libraries: build with --static-swift-stdlib to measure them as deployed.")
            if report.idlePollNs == 0 {
                print(
                    "This machine halts an idle CPU at once (no cpuidle driver polls first): after each wakeup the caches are cold,",
                    "so a ping-pong call's user-mode work costs several times what it costs pipelined, where the loop never sleeps.",
                    separator: "\n")
            }
            print(
                "OMX's clients poll for an answer for up to \(report.answerPollUs) us before they sleep (omx.conf's answer_poll_us),",
                "which keeps their CPU from halting; \"\(RPCBenchmark.sleepingClientName)\" sleeps at once, as raw and the C programs do,",
                "and \"\(RPCBenchmark.pollingRawClientName)\" (the rows \"raw polling too\") polls as long as OMX's callers before it blocks.",
                separator: "\n")
            if let rss = report.idleServiceRSSKiB {
                print("idle omx-discovery resident memory: \(String(format: rss, decimals: 1)) MiB (target: under 20 MiB)")
            }
        }

        private func format(_ value: Double, _ unit: String) -> String {
            unit == "us" ? "\(String(format: value, decimals: 1)) us" : "\(Int(value.rounded())) \(unit)"
        }

        /// "82.5 us (25.1 user)".
        private func cpu(_ total: Double, user: Double) -> String {
            "\(String(format: total, decimals: 1)) us (\(String(format: user, decimals: 1)) user)"
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
