import Glibc
import Logging
import Shared

/// `omx bench rpc`: the RPC runtime between two processes against a raw-socket baseline
/// (`omx-rawbench`) doing the same exchange, measured in the same run.
public struct RPCBenchmark {
    /// What to measure and for how long.
    public struct Options: Sendable {
        public var pingCount = 5_000
        public var seconds = 2.0
        public var window = 128
        public var largeWindow = 16

        public init() {}
    }

    /// One line of the report: the same test through OMX and through raw sockets.
    public struct Row: Sendable, Encodable {
        public let transport: String
        public let test: String
        public let unit: String
        public let omx: Double
        public let raw: Double
        /// omx / raw: for latency lower is better, for throughput higher is better.
        public let ratio: Double
    }

    /// Everything measured.
    public struct Report: Sendable, Encodable {
        public var rows: [Row] = []
        public var idleServiceRSSKiB: Int?
    }

    let options: Options
    let omxPath: String
    let rawPath: String
    let discoveryPath: String

    public init(options: Options) {
        self.options = options
        omxPath = siblingExecutable("omx")
        rawPath = siblingExecutable("omx-rawbench")
        discoveryPath = siblingExecutable("omx-discovery")
    }

    /// Runs every measurement; `progress` receives a line as each one starts.
    public func run(progress: (String) -> Void) async throws -> Report {
        var template = "/tmp/omx-bench-XXXXXX".utf8CString
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw ConfigError("cannot create a temporary directory in /tmp")
        }
        let key = ClusterKey.generate()
        try key.write(to: "\(dir)/cluster.key", overwrite: false)
        let mapPath = "\(dir)/bench.map"
        try writeTextFile(mapPath, "1 127.0.0.1 1\n")
        let map = try ClusterMap.load(path: mapPath)
        let basePort = Int.random(in: 20_000...40_000)
        let omxServer = try ChildProcess.spawn(
            omxPath, ["bench", "rpc-server", "--port", "\(basePort)", "--unix", "\(dir)/omx.sock", "--map", mapPath, "--key", "\(dir)/cluster.key"],
            stdoutPath: "\(dir)/omx-server.out", stderrPath: "\(dir)/omx-server.err")
        let rawServer = try ChildProcess.spawn(rawPath, ["serve", "127.0.0.1", "\(basePort + 1)", "\(dir)/raw.sock"], stdoutPath: "\(dir)/raw-server.out")
        defer {
            omxServer.send(SIGTERM)
            rawServer.send(SIGKILL)
            omxServer.wait()
            rawServer.wait()
        }
        try await waitForLine("ready", in: "\(dir)/omx-server.out", process: omxServer)
        try await waitForLine("ready", in: "\(dir)/raw-server.out", process: rawServer)

        let loop = try EventLoop()
        let logger = Logger(label: "omx-bench")
        var report = Report()
        let transports: [(name: String, omx: RPCEndpoint, raw: [String], auth: Authenticator?)] = [
            ("tcp", .tcp(host: "127.0.0.1", port: basePort), ["tcp", "127.0.0.1", "\(basePort + 1)"], Authenticator(key: key, nodeID: 1)),
            ("unix", .unix(path: "\(dir)/omx.sock"), ["unix", "\(dir)/raw.sock"], nil),
        ]
        for transport in transports {
            let client = RPCClient(loop: loop, endpoint: transport.omx, configuration: .init(authenticator: transport.auth), logger: logger)
            progress("\(transport.name): ping-pong latency, 64 B, \(options.pingCount) calls")
            // The measuring code runs on the client's loop thread, as a service's own code does.
            let latency = try await withTaskExecutorPreference(loop) { try await pingPong(client, count: options.pingCount) }
            let rawLatency = try runRaw(["pingpong"] + transport.raw + ["64", "\(options.pingCount)"], dir: dir)
            report.rows.append(Row(transport: transport.name, test: "ping-pong p50", unit: "us", omx: latency.p50, raw: rawLatency[0], ratio: latency.p50 / rawLatency[0]))
            report.rows.append(Row(transport: transport.name, test: "ping-pong p99", unit: "us", omx: latency.p99, raw: rawLatency[1], ratio: latency.p99 / rawLatency[1]))
            for (size, window) in [(64, options.window), (65_536, options.largeWindow)] {
                let label = size == 64 ? "64 B" : "64 KiB"
                progress("\(transport.name): pipelined \(label), \(window) in flight, \(options.seconds) s")
                let rate = try await pipelined(client, bodySize: size, window: window, on: loop)
                let rawRate = try runRaw(["pipeline"] + transport.raw + ["\(size)", "\(options.seconds)", "\(window)"], dir: dir)[0]
                report.rows.append(Row(transport: transport.name, test: "pipelined \(label)", unit: "calls/s", omx: rate, raw: rawRate, ratio: rate / rawRate))
            }
            await client.close()
        }
        await loop.shutdown()
        progress("idle omx-discovery: resident memory")
        report.idleServiceRSSKiB = try await idleServiceRSS(dir: dir, mapPath: mapPath, port: basePort + 2)
        return report
    }

    private func pingPong(_ client: RPCClient, count: Int) async throws -> (p50: Double, p99: Double) {
        let body = [UInt8](repeating: 7, count: 64)
        for _ in 0..<max(count / 10, 100) { _ = try await client.call(BenchServer.echoMethod, body) }
        var samples: [Double] = []
        samples.reserveCapacity(count)
        for _ in 0..<count {
            let start = monotonicNs()
            _ = try await client.call(BenchServer.echoMethod, body)
            samples.append(Double(monotonicNs() - start) / 1_000)
        }
        samples.sort()
        return (samples[count / 2], samples[count * 99 / 100])
    }

    private func pipelined(_ client: RPCClient, bodySize: Int, window: Int, on loop: EventLoop) async throws -> Double {
        let body = [UInt8](repeating: 7, count: bodySize)
        let start = monotonicNs()
        let end = start + UInt64(options.seconds * 1e9)
        let completed = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<window {
                group.addTask(executorPreference: loop) {
                    var calls = 0
                    while monotonicNs() < end {
                        _ = try await client.call(BenchServer.echoMethod, body, timeout: .seconds(30))
                        calls += 1
                    }
                    return calls
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(completed) / (Double(monotonicNs() - start) / 1e9)
    }

    private func runRaw(_ arguments: [String], dir: String) throws -> [Double] {
        let output = "\(dir)/raw-client.out"
        unlink(output)
        let process = try ChildProcess.spawn(rawPath, arguments, stdoutPath: output)
        let status = process.wait()
        let text = (try? readTextFile(output)) ?? ""
        let values = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Double($0) }
        guard status == 0, !values.isEmpty else {
            throw ConfigError("omx-rawbench \(arguments.joined(separator: " ")) failed with status \(status): \(text)")
        }
        return values
    }

    private func idleServiceRSS(dir: String, mapPath: String, port: Int) async throws -> Int? {
        let service = try ChildProcess.spawn(
            discoveryPath,
            ["--map", mapPath, "--key", "\(dir)/cluster.key", "--node-id", "1", "--run-dir", "\(dir)/run", "--port", "\(port)", "--log-level", "warning"],
            stderrPath: "\(dir)/discovery.err")
        defer {
            service.send(SIGTERM)
            service.wait()
        }
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(dir)/run/discovery.sock"), logger: Logger(label: "omx-bench"))
        let deadline = monotonicNs() + 10_000_000_000
        var ready = false
        while !ready && monotonicNs() < deadline {
            ready = (try? await client.call("Ping", PingRequest(), returning: PingResponse.self)) != nil
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        await client.close()
        await loop.shutdown()
        guard ready else { throw ConfigError("omx-discovery did not answer within 10 s; see \(dir)/discovery.err") }
        try await Task.sleep(for: .seconds(1))
        return residentKiB(of: service.pid)
    }

    private func waitForLine(_ line: String, in path: String, process: ChildProcess) async throws {
        let deadline = monotonicNs() + 10_000_000_000
        while monotonicNs() < deadline {
            if let text = try? readTextFile(path), text.split(separator: "\n").contains(Substring(line)) { return }
            if let status = process.poll() {
                throw ConfigError("\(process.command.joined(separator: " ")) exited with status \(status) before it was ready")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ConfigError("\(process.command.joined(separator: " ")) was not ready within 10 s")
    }
}
