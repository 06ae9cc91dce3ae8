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
        /// Each test alternates OMX and raw this many times (each running its share of the
        /// calls or seconds), so a machine that speeds up or slows down meanwhile weighs on
        /// both alike.
        public var rounds = 5

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
        /// CPU time per call, client and server together (user and system), in microseconds:
        /// what each side costs whatever the scheduler did with the wakeups.
        public let omxCPUPerCallUs: Double
        public let rawCPUPerCallUs: Double
        /// The user-mode part of the CPU time per call (the rest is the kernel's: sockets,
        /// wakeups), sampled by the kernel at each clock tick.
        public let omxUserCPUPerCallUs: Double
        public let rawUserCPUPerCallUs: Double

        init(transport: String, test: String, unit: String, omx: Double, raw: Double, ratio: Double, omxTally: Tally, rawTally: Tally) {
            self.transport = transport
            self.test = test
            self.unit = unit
            self.omx = omx
            self.raw = raw
            self.ratio = ratio
            omxCPUPerCallUs = omxTally.cpuPerCallUs
            rawCPUPerCallUs = rawTally.cpuPerCallUs
            omxUserCPUPerCallUs = omxTally.userPerCallUs
            rawUserCPUPerCallUs = rawTally.userPerCallUs
        }
    }

    /// The raw client's ping-pong against one bare libuv loop echoing the frames (no envelope,
    /// authentication, Swift or task): the least a server on an event loop, as every OMX
    /// service is, can cost. OMX's own work per call is what it takes beyond this.
    public struct LoopFloor: Sendable, Encodable {
        public let transport: String
        public let p50Us: Double
        public let p99Us: Double
        /// p50 against the blocking raw server, measured in the same rounds.
        public let rawP50Us: Double
        /// Client and server CPU time per call.
        public let cpuPerCallUs: Double
    }

    /// Everything measured.
    public struct Report: Sendable, Encodable {
        public var rows: [Row] = []
        public var loopFloors: [LoopFloor] = []
        public var idleServiceRSSKiB: Int?
        /// Whether clients ran on CPU 0 and servers on CPU 1 (as on two hosts), OMX and raw alike.
        public var pinned = false
        /// How long this KVM guest's idle CPUs poll before they halt (haltpoll's
        /// `guest_halt_poll_ns`), nil when the kernel has no such setting. At 0 every wait halts
        /// the virtual CPU, and the code that runs after each wakeup finds the caches cold.
        public var guestHaltPollNs: Int?
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
        // Last, once the servers stopped: the run's key, map, sockets and server output.
        defer { removeTree(dir) }
        let key = ClusterKey.generate()
        try key.write(to: "\(dir)/cluster.key", overwrite: false)
        let mapPath = "\(dir)/bench.map"
        try writeTextFile(mapPath, "1 127.0.0.1 1\n")
        let basePort = Int.random(in: 20_000...40_000)
        // Where the scheduler puts the two ends decides most of a round trip on a small machine
        // (a wakeup on the same CPU is a context switch, on another an interrupt): every client
        // runs on CPU 0 and every server on CPU 1, so OMX and raw are measured alike.
        var report = Report()
        report.pinned = sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2
        report.guestHaltPollNs = (try? readTextFile("/sys/module/haltpoll/parameters/guest_halt_poll_ns")).flatMap { Int($0.trimmedWhitespace) }
        let serverCPU = report.pinned ? ["/usr/bin/taskset", "-c", "1"] : []
        if report.pinned { try pin(pid: getpid(), cpu: 0) }
        let omxServer = try spawn(
            serverCPU + [omxPath, "bench", "rpc-server", "--port", "\(basePort)", "--unix", "\(dir)/omx.sock", "--map", mapPath, "--key", "\(dir)/cluster.key"],
            stdoutPath: "\(dir)/omx-server.out", stderrPath: "\(dir)/omx-server.err")
        let rawServer = try spawn(serverCPU + [rawPath, "serve", "127.0.0.1", "\(basePort + 1)", "\(dir)/raw.sock"], stdoutPath: "\(dir)/raw-server.out")
        // basePort + 2 is the idle service's.
        let floorServer = try spawn(serverCPU + [rawPath, "serve-uv", "127.0.0.1", "\(basePort + 3)", "\(dir)/uv.sock"], stdoutPath: "\(dir)/uv-server.out")
        defer {
            omxServer.send(SIGTERM)
            rawServer.send(SIGKILL)
            floorServer.send(SIGKILL)
            omxServer.wait()
            rawServer.wait()
            floorServer.wait()
        }
        try await waitForLine("ready", in: "\(dir)/omx-server.out", process: omxServer)
        try await waitForLine("ready", in: "\(dir)/raw-server.out", process: rawServer)
        try await waitForLine("ready", in: "\(dir)/uv-server.out", process: floorServer)

        let loop = try EventLoop()
        let logger = Logger(label: "omx-bench")
        let transports: [(name: String, omx: RPCEndpoint, raw: [String], floor: [String], auth: Authenticator?)] = [
            (
                "tcp", .tcp(host: "127.0.0.1", port: basePort), ["tcp", "127.0.0.1", "\(basePort + 1)"], ["tcp", "127.0.0.1", "\(basePort + 3)"],
                Authenticator(key: key, nodeID: 1)
            ),
            ("unix", .unix(path: "\(dir)/omx.sock"), ["unix", "\(dir)/raw.sock"], ["unix", "\(dir)/uv.sock"], nil),
        ]
        // Where each raw server reports the connections it served.
        let (raw, floor) = ("\(dir)/raw-server.out", "\(dir)/uv-server.out")
        for transport in transports {
            let client = RPCClient(loop: loop, endpoint: transport.omx, configuration: .init(authenticator: transport.auth), logger: logger)
            let perRound = max(options.pingCount / options.rounds, 100)
            progress("\(transport.name): ping-pong latency, 64 B, \(options.rounds) x \(perRound) calls each")
            var omx = Tally(), omxBlocking = Tally(), rawTally = Tally(), floorTally = Tally()
            // The blocking client (what /mfs's threads use) waits in recv, as the raw client does.
            let blocking = blockingClient(transport.omx, transport.auth)
            for _ in 0..<options.rounds {
                // The measuring code runs on the client's loop thread, as a service's own code does.
                try await omx.charge(server: omxServer) {
                    try await withTaskExecutorPreference(loop) {
                        try await pingPong(count: perRound) { _ = try await client.call(BenchServer.echoMethod, $0) }
                    }
                }
                rawTally.add(try runRaw(["pingpong"] + transport.raw + ["64", "\(perRound)"], dir: dir, servedBy: raw))
                floorTally.add(try runRaw(["pingpong"] + transport.floor + ["64", "\(perRound)"], dir: dir, servedBy: floor))
                if let blocking {
                    try await omxBlocking.charge(server: omxServer) {
                        try await pingPong(count: perRound) { _ = try blocking.call(BenchServer.echoMethod, $0) }
                    }
                }
            }
            for (client, tally) in [("", omx), (", blocking client", omxBlocking)] where !tally.samplesUs.isEmpty {
                for (test, percentile) in [("ping-pong p50", 0.5), ("ping-pong p99", 0.99)] {
                    let (omxValue, rawValue) = (tally.percentile(percentile), rawTally.percentile(percentile))
                    report.rows.append(
                        Row(
                            transport: transport.name, test: test + client, unit: "us", omx: omxValue, raw: rawValue, ratio: omxValue / rawValue,
                            omxTally: tally, rawTally: rawTally))
                }
            }
            report.loopFloors.append(
                LoopFloor(
                    transport: transport.name, p50Us: floorTally.percentile(0.5), p99Us: floorTally.percentile(0.99), rawP50Us: rawTally.percentile(0.5),
                    cpuPerCallUs: floorTally.cpuPerCallUs))
            for (size, window) in [(64, options.window), (65_536, options.largeWindow)] {
                let label = size == 64 ? "64 B" : "64 KiB"
                let seconds = options.seconds / Double(options.rounds)
                progress("\(transport.name): pipelined \(label), \(window) in flight, \(options.rounds) x \(seconds) s")
                var omx = Tally(), rawTally = Tally()
                for _ in 0..<options.rounds {
                    try await omx.charge(server: omxServer) { try await pipelined(client, bodySize: size, window: window, seconds: seconds, on: loop) }
                    rawTally.add(try runRaw(["pipeline"] + transport.raw + ["\(size)", "\(seconds)", "\(window)"], dir: dir, servedBy: raw))
                }
                report.rows.append(
                    Row(
                        transport: transport.name, test: "pipelined \(label)", unit: "calls/s", omx: omx.rate, raw: rawTally.rate,
                        ratio: omx.rate / rawTally.rate, omxTally: omx, rawTally: rawTally))
            }
            await client.close()
        }
        await loop.shutdown()
        progress("idle omx-discovery: resident memory")
        report.idleServiceRSSKiB = try await idleServiceRSS(dir: dir, mapPath: mapPath, port: basePort + 2)
        return report
    }

    /// What one side (OMX or raw) measured over the rounds of a test.
    struct Tally {
        var samplesUs: [Double] = []
        var calls = 0
        var seconds = 0.0
        var cpuNs = 0.0
        /// The user-mode part of `cpuNs`.
        var userNs = 0.0

        /// Calls per second over every round.
        var rate: Double { Double(calls) / seconds }
        /// CPU time per call, client and server together.
        var cpuPerCallUs: Double { cpuNs / 1_000 / Double(max(calls, 1)) }
        var userPerCallUs: Double { userNs / 1_000 / Double(max(calls, 1)) }

        func percentile(_ fraction: Double) -> Double {
            let sorted = samplesUs.sorted()
            return sorted[min(Int(Double(sorted.count) * fraction), sorted.count - 1)]
        }

        mutating func add(_ other: Tally) {
            samplesUs += other.samplesUs
            calls += other.calls
            seconds += other.seconds
            cpuNs += other.cpuNs
            userNs += other.userNs
        }

        /// Runs an OMX round and charges the CPU time this process and the server spent
        /// meanwhile to its calls.
        mutating func charge(server: ChildProcess, _ round: () async throws -> Tally) async throws {
            let before = (cpuTimeNs(of: getpid()) ?? 0) + (cpuTimeNs(of: server.pid) ?? 0)
            let userBefore = (userTimeNs(of: getpid()) ?? 0) + (userTimeNs(of: server.pid) ?? 0)
            var measured = try await round()
            let after = (cpuTimeNs(of: getpid()) ?? 0) + (cpuTimeNs(of: server.pid) ?? 0)
            let userAfter = (userTimeNs(of: getpid()) ?? 0) + (userTimeNs(of: server.pid) ?? 0)
            measured.cpuNs = Double(after - before)
            measured.userNs = Double(userAfter - userBefore)
            add(measured)
        }
    }

    /// `count` sequential calls of 64 bytes made by `call`, after a warm-up of a tenth as many
    /// (calls and CPU count both).
    private func pingPong(count: Int, _ call: ([UInt8]) async throws -> Void) async throws -> Tally {
        let body = [UInt8](repeating: 7, count: 64)
        let warmUp = count / 10
        for _ in 0..<warmUp { try await call(body) }
        var tally = Tally()
        tally.samplesUs.reserveCapacity(count)
        for _ in 0..<count {
            let start = monotonicNs()
            try await call(body)
            tally.samplesUs.append(Double(monotonicNs() - start) / 1_000)
        }
        tally.calls = warmUp + count
        return tally
    }

    /// A blocking client of a TCP endpoint (nil for a Unix socket, which it does not speak).
    private func blockingClient(_ endpoint: RPCEndpoint, _ authenticator: Authenticator?) -> BlockingRPCClient? {
        guard case let .tcp(host, port) = endpoint else { return nil }
        return BlockingRPCClient(host: host, port: port, authenticator: authenticator, bindAddress: nil)
    }

    /// Calls with `window` in flight for `seconds`.
    private func pipelined(_ client: RPCClient, bodySize: Int, window: Int, seconds: Double, on loop: EventLoop) async throws -> Tally {
        let body = [UInt8](repeating: 7, count: bodySize)
        let start = monotonicNs()
        let end = start + UInt64(seconds * 1e9)
        var tally = Tally()
        tally.calls = try await withThrowingTaskGroup(of: Int.self) { group in
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
        tally.seconds = Double(monotonicNs() - start) / 1e9
        return tally
    }

    /// Runs one raw client and reads what it measured: each round trip (ping-pong) or its
    /// calls and seconds (pipeline), and the CPU time of the client and of the server thread
    /// that served it (which reports when the client is gone).
    private func runRaw(_ arguments: [String], dir: String, servedBy served: String) throws -> Tally {
        let output = "\(dir)/raw-client.out"
        unlink(output)
        let reportsBefore = rawServerReports(served).count
        let process = try ChildProcess.spawn(rawPath, arguments, stdoutPath: output)
        let status = process.wait()
        let lines = ((try? readTextFile(output)) ?? "").split(separator: "\n")
        let clientCPU = lines.last.flatMap { line in line.hasPrefix("cpu ") ? line.dropFirst(4).split(separator: " ").compactMap { Double($0) } : nil }
        guard status == 0, let clientCPU, clientCPU.count == 2 else {
            throw ConfigError("omx-rawbench \(arguments.joined(separator: " ")) failed with status \(status): \(lines.joined(separator: "\n"))")
        }
        let deadline = monotonicNs() + 5_000_000_000
        var reports = rawServerReports(served)
        while reports.count == reportsBefore && monotonicNs() < deadline {
            usleep(5_000)
            reports = rawServerReports(served)
        }
        guard reports.count > reportsBefore, let report = reports.last, report.frames > 0 else {
            throw ConfigError("omx-rawbench serve did not report the connection of \(arguments.joined(separator: " ")) (see \(served))")
        }
        var tally = Tally()
        let values = lines.dropLast().compactMap { line in line.split(separator: " ").map { Double($0) } }
        if arguments[0] == "pingpong" {
            tally.samplesUs = values.compactMap { $0.first ?? nil }
            tally.calls = report.frames
        } else {
            guard let figures = values.first, figures.count == 2, let calls = figures[0], let seconds = figures[1] else {
                throw ConfigError("omx-rawbench \(arguments.joined(separator: " ")) printed no calls and seconds")
            }
            tally.calls = Int(calls)
            tally.seconds = seconds
        }
        tally.cpuNs = clientCPU[0] * Double(report.frames) + Double(report.cpuNs)
        tally.userNs = clientCPU[1] * Double(report.frames) + Double(report.userNs)
        return tally
    }

    /// The "served FRAMES cpu_ns NS user_ns NS" lines a raw server printed so far.
    private func rawServerReports(_ path: String) -> [(frames: Int, cpuNs: UInt64, userNs: UInt64)] {
        ((try? readTextFile(path)) ?? "").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 6, fields[0] == "served", let frames = Int(fields[1]), let cpu = UInt64(fields[3]), let user = UInt64(fields[5]) else {
                return nil
            }
            return (frames, cpu, user)
        }
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

    /// Starts `command`: a program's path, then its arguments.
    private func spawn(_ command: [String], stdoutPath: String, stderrPath: String? = nil) throws -> ChildProcess {
        try ChildProcess.spawn(command[0], Array(command.dropFirst()), stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// Moves every thread of `pid` to `cpu`; threads it starts later inherit that.
    private func pin(pid: pid_t, cpu: Int) throws {
        let taskset = try ChildProcess.spawn("/usr/bin/taskset", ["-a", "-p", "-c", "\(cpu)", "\(pid)"], stdoutPath: "/dev/null")
        let status = taskset.wait()
        guard status == 0 else { throw ConfigError("taskset -a -p -c \(cpu) \(pid) failed with status \(status) (util-linux is needed)") }
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
