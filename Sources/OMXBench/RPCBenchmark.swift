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

    /// One client against one server in the ping-pong rounds. Pairing OMX's Swift client and
    /// server with raw sockets, a bare libuv loop and OMX's protocol written in C
    /// (`omx-rawbench`) shows where a call's time goes: the kernel, the event loop, the
    /// protocol itself (envelope, signatures), or the Swift runtime's work on each side.
    public struct Pairing: Sendable, Encodable {
        public let transport: String
        public let client: String
        public let server: String
        public let p50Us: Double
        public let p99Us: Double
        /// p50 against the raw pairing's, measured in the same rounds.
        public let ratio: Double
        /// Client and server CPU time per call, and its user-mode part.
        public let cpuPerCallUs: Double
        public let userPerCallUs: Double
    }

    /// Everything measured.
    public struct Report: Sendable, Encodable {
        public var rows: [Row] = []
        public var pairings: [Pairing] = []
        public var idleServiceRSSKiB: Int?
        /// Whether clients ran on CPU 0 and servers on CPU 1 (as on two hosts), OMX and raw alike.
        public var pinned = false
        /// How long this machine's idle CPUs poll before they halt: haltpoll's
        /// `guest_halt_poll_ns` when the haltpoll cpuidle driver runs them, 0 when no cpuidle
        /// driver does (the idle loop halts at once), nil when another driver does. At 0 every
        /// wait halts the virtual CPU, and the code that runs after each wakeup finds the caches cold.
        public var idlePollNs: Int?
        /// Whether the executables carry the Swift runtime (`--static-swift-stdlib`, as
        /// `scripts/install.sh` and the image build them) rather than load its shared libraries.
        public var swiftRuntimeLinkedIn = false
        /// How long OMX's clients poll for an answer before they sleep (omx.conf's `answer_poll_us`).
        public var answerPollUs = OMXConfig.active.answerPollMicroseconds
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

    /// Runs every measurement; `progress` receives a line as each one starts. Terminated (SIGTERM
    /// or ^C), it stops its servers, removes its directory and exits with 128 + the signal.
    public func run(progress: (String) -> Void) async throws -> Report {
        let termination = try await BenchTermination.watch()
        do {
            let report = try await measure(termination, progress: progress)
            await termination.finish()
            return report
        } catch {
            await termination.finish()
            throw error
        }
    }

    private func measure(_ termination: BenchTermination, progress: (String) -> Void) async throws -> Report {
        let dir = try termination.makeDirectory()
        // Last, once the servers stopped: the run's key, map, sockets and server output.
        defer { removeTree(dir) }
        let key = ClusterKey.generate()
        let (keyPath, mapPath) = (Servers.keyPath(in: dir), Servers.mapPath(in: dir))
        try key.write(to: keyPath, overwrite: false)
        try writeTextFile(mapPath, "1 127.0.0.1 1\n")
        let basePort = Int.random(in: 20_000...40_000)
        // Where the scheduler puts the two ends decides most of a round trip on a small machine
        // (a wakeup on the same CPU is a context switch, on another an interrupt): every client
        // runs on CPU 0 and every server on CPU 1, so OMX and raw are measured alike.
        var report = Report()
        report.pinned = sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2
        report.idlePollNs = idleCPUPollNs()
        report.swiftRuntimeLinkedIn = !((try? readTextFile("/proc/self/maps"))?.contains("/libswiftCore.so") ?? true)
        let serverCPU = report.pinned ? ["/usr/bin/taskset", "-c", "1"] : []
        if report.pinned { try pin(pid: getpid(), cpu: 0) }
        let servers = try await Servers.start(self, termination, dir: dir, basePort: basePort, serverCPU: serverCPU)
        defer { servers.stop() }

        let loop = try EventLoop()
        let logger = Logger(label: "omx-bench")
        let transports = [
            Transport(
                name: "tcp", omx: .tcp(host: "127.0.0.1", port: basePort), protocolC: .tcp(host: "127.0.0.1", port: basePort + 4),
                raw: ["tcp", "127.0.0.1", "\(basePort + 1)"], floor: ["tcp", "127.0.0.1", "\(basePort + 3)"],
                protocolFloor: ["tcp", "127.0.0.1", "\(basePort + 4)", keyPath], cToOMX: ["tcp", "127.0.0.1", "\(basePort)", keyPath],
                auth: Authenticator(key: key, nodeID: 1)),
            Transport(
                name: "unix", omx: .unix(path: "\(dir)/omx.sock"), protocolC: .unix(path: "\(dir)/protocol.sock"), raw: ["unix", "\(dir)/raw.sock"],
                floor: ["unix", "\(dir)/uv.sock"], protocolFloor: ["unix", "\(dir)/protocol.sock"], cToOMX: ["unix", "\(dir)/omx.sock"], auth: nil),
        ]
        for transport in transports {
            let client = RPCClient(loop: loop, endpoint: transport.omx, configuration: .init(authenticator: transport.auth), logger: logger)
            try await measureLatency(transport, servers, client: client, loop: loop, logger: logger, into: &report, progress: progress)
            for (size, window) in [(64, options.window), (65_536, options.largeWindow)] {
                let label = size == 64 ? "64 B" : "64 KiB"
                let seconds = options.seconds / Double(options.rounds)
                progress("\(transport.name): pipelined \(label), \(window) in flight, \(options.rounds) x \(seconds) s")
                var omx = Tally(), rawTally = Tally()
                for _ in 0..<options.rounds {
                    try await omx.charge(server: servers.omx) { try await pipelined(client, bodySize: size, window: window, seconds: seconds, on: loop) }
                    rawTally.add(try runC(["pipeline"] + transport.raw + ["\(size)", "\(seconds)", "\(window)"], against: servers.rawReports, of: servers))
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
        report.idleServiceRSSKiB = try await idleServiceRSS(termination, dir: dir, mapPath: mapPath, port: basePort + 2)
        return report
    }

    /// The ping-pong rounds of one transport: every pairing of client and server, alternating
    /// within each round; OMX's own against raw in the report's rows, all of them in its pairings.
    private func measureLatency(
        _ transport: Transport, _ servers: Servers, client: RPCClient, loop: EventLoop, logger: Logger, into report: inout Report,
        progress: (String) -> Void
    ) async throws {
        let perRound = max(options.pingCount / options.rounds, 100)
        let clientToC = RPCClient(loop: loop, endpoint: transport.protocolC, configuration: .init(authenticator: transport.auth), logger: logger)
        // The same client sleeping as soon as a call is out, as raw's and the C programs' do.
        var sleepingAtOnce = RPCClient.Configuration(authenticator: transport.auth)
        sleepingAtOnce.answerPolling = .zero
        let sleepingClient = RPCClient(loop: loop, endpoint: transport.omx, configuration: sleepingAtOnce, logger: logger)
        // Raw frames ("pingpong") or OMX envelopes ("pingpong-omx").
        let cPingPong = { (mode: String, arguments: [String], server: CServer) in
            { () async throws -> Tally in try runC([mode] + arguments + ["64", "\(perRound)"], against: server, of: servers) }
        }
        // The measuring code of OMX's client runs on its loop thread, as a service's own code does.
        let asyncPingPong = { (client: RPCClient, server: ChildProcess) in
            { () async throws -> Tally in
                var tally = Tally()
                try await tally.charge(server: server) {
                    try await withTaskExecutorPreference(loop) { try await pingPong(count: perRound) { _ = try await client.call(BenchServer.echoMethod, $0) } }
                }
                return tally
            }
        }
        // The blocking client (what /mfs's threads use) waits in recv, as the raw client does.
        let blockingPingPong = { (client: BlockingRPCClient, server: ChildProcess) in
            { () async throws -> Tally in
                var tally = Tally()
                try await tally.charge(server: server) { try await pingPong(count: perRound) { _ = try client.call(BenchServer.echoMethod, $0) } }
                return tally
            }
        }
        let (inC, cOnLibuv, bareLibuv) = ("OMX protocol in C", "OMX protocol in C, libuv", "bare libuv loop")
        // The raw client polling for each answer as long as OMX's callers do, before it blocks.
        let rawPolling = { [pollUs = report.answerPollUs] (arguments: [String], server: CServer) in
            { () async throws -> Tally in try runC(["pingpong"] + arguments + ["64", "\(perRound)", "\(pollUs)"], against: server, of: servers) }
        }
        // Libuv loops at both ends, as between two OMX services: with no envelope, then with
        // OMX's protocol in C, are the floors of OMX's client against OMX's server.
        var pairings: [(client: String, server: String, round: () async throws -> Tally)] = [
            ("raw", "raw (a thread per connection)", cPingPong("pingpong", transport.raw, servers.rawReports)),
            (RPCBenchmark.pollingRawClientName, "raw (a thread per connection)", rawPolling(transport.raw, servers.rawReports)),
            ("raw", bareLibuv, cPingPong("pingpong", transport.floor, servers.floorReports)),
            (RPCBenchmark.pollingRawClientName, bareLibuv, rawPolling(transport.floor, servers.floorReports)),
            (bareLibuv, bareLibuv, cPingPong("pingpong-uv", transport.floor, servers.floorReports)),
            (inC, cOnLibuv, cPingPong("pingpong-omx", transport.protocolFloor, servers.protocolReports)),
            (cOnLibuv, cOnLibuv, cPingPong("pingpong-uv-omx", transport.protocolFloor, servers.protocolReports)),
            (inC, "OMX server", cPingPong("pingpong-omx", transport.cToOMX, .omx(servers.omx))),
            (cOnLibuv, "OMX server", cPingPong("pingpong-uv-omx", transport.cToOMX, .omx(servers.omx))),
            ("OMX client", cOnLibuv, asyncPingPong(clientToC, servers.protocolC)),
            ("OMX client", "OMX server", asyncPingPong(client, servers.omx)),
            (RPCBenchmark.sleepingClientName, "OMX server", asyncPingPong(sleepingClient, servers.omx)),
        ]
        if let toC = blockingClient(transport.protocolC, transport.auth), let toOMX = blockingClient(transport.omx, transport.auth) {
            let afterAsyncToC = (pairings.firstIndex { $0.client == "OMX client" } ?? pairings.count - 1) + 1
            pairings.insert(("OMX blocking client", cOnLibuv, blockingPingPong(toC, servers.protocolC)), at: afterAsyncToC)
            pairings.append(("OMX blocking client", "OMX server", blockingPingPong(toOMX, servers.omx)))
        }
        progress("\(transport.name): ping-pong latency, 64 B, \(options.rounds) x \(perRound) calls each, \(pairings.count) pairings")
        var tallies = [Tally](repeating: Tally(), count: pairings.count)
        do {
            for _ in 0..<options.rounds {
                for (index, pairing) in pairings.enumerated() { tallies[index].add(try await pairing.round()) }
            }
        } catch {
            await clientToC.close()
            await sleepingClient.close()
            throw error
        }
        await clientToC.close()
        await sleepingClient.close()
        let raw = tallies[0]
        let rawPollingToo = tallies[1]
        for (pairing, tally) in zip(pairings, tallies) {
            report.pairings.append(
                Pairing(
                    transport: transport.name, client: pairing.client, server: pairing.server, p50Us: tally.percentile(0.5), p99Us: tally.percentile(0.99),
                    ratio: tally.percentile(0.5) / raw.percentile(0.5), cpuPerCallUs: tally.cpuPerCallUs, userPerCallUs: tally.userPerCallUs))
            let rowSuffixes = ["OMX client": "", "OMX blocking client": ", blocking client", RPCBenchmark.sleepingClientName: ", no answer polling"]
            guard pairing.server == "OMX server", let suffix = rowSuffixes[pairing.client] else { continue }
            // OMX's client against raw as it stands, and against raw polling as OMX does.
            let baselines = pairing.client == "OMX client" ? [(suffix, raw), (", raw polling too", rawPollingToo)] : [(suffix, raw)]
            for (label, baseline) in baselines {
                for (test, percentile) in [("ping-pong p50", 0.5), ("ping-pong p99", 0.99)] {
                    let (omxValue, rawValue) = (tally.percentile(percentile), baseline.percentile(percentile))
                    report.rows.append(
                        Row(
                            transport: transport.name, test: test + label, unit: "us", omx: omxValue,
                            raw: rawValue, ratio: omxValue / rawValue, omxTally: tally, rawTally: baseline))
                }
            }
        }
    }

    /// OMX's client with no polling for answers (`RPCClient.Configuration.answerPolling` 0).
    public static let sleepingClientName = "OMX client, no answer polling"
    /// The raw client polling for each answer for as long as OMX's callers do before it blocks.
    public static let pollingRawClientName = "raw, polling for answers"

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

    private func idleServiceRSS(_ termination: BenchTermination, dir: String, mapPath: String, port: Int) async throws -> Int? {
        let service = try termination.spawn(
            [discoveryPath, "--map", mapPath, "--key", Servers.keyPath(in: dir), "--node-id", "1", "--run-dir", "\(dir)/run", "--port", "\(port)", "--log-level", "warning"],
            stdoutPath: "/dev/null", stderrPath: "\(dir)/discovery.err")
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

    /// Moves every thread of `pid` to `cpu`; threads it starts later inherit that.
    private func pin(pid: pid_t, cpu: Int) throws {
        let taskset = try ChildProcess.spawn("/usr/bin/taskset", ["-a", "-p", "-c", "\(cpu)", "\(pid)"], stdoutPath: "/dev/null")
        let status = taskset.wait()
        guard status == 0 else { throw ConfigError("taskset -a -p -c \(cpu) \(pid) failed with status \(status) (util-linux is needed)") }
    }

    func waitForLine(_ line: String, in path: String, process: ChildProcess) async throws {
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

/// How long an idle CPU polls before it halts (see `RPCBenchmark.Report.idlePollNs`).
private func idleCPUPollNs() -> Int? {
    switch (try? readTextFile("/sys/devices/system/cpu/cpuidle/current_driver"))?.trimmedWhitespace {
    case "none": return 0
    case "haltpoll": return (try? readTextFile("/sys/module/haltpoll/parameters/guest_halt_poll_ns")).flatMap { Int($0.trimmedWhitespace) }
    default: return nil
    }
}
