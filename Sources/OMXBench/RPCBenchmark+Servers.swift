import Glibc
import Shared

extension RPCBenchmark {
    /// How the clients of one transport reach each server.
    struct Transport {
        let name: String
        /// The OMX server, and the C one speaking OMX's protocol, for OMX's clients.
        let omx: RPCEndpoint
        let protocolC: RPCEndpoint
        /// `omx-rawbench` client arguments: raw frames to the raw server and to the bare
        /// libuv loop; OMX envelopes to the C protocol server and to the OMX server.
        let raw: [String]
        let floor: [String]
        let protocolFloor: [String]
        let cToOMX: [String]
        /// Signs TCP calls; nil on a Unix socket.
        let auth: Authenticator?
    }

    /// The four servers of a run, each a process of its own on the servers' CPU: OMX's, the
    /// raw one (a blocking thread per connection), the bare libuv loop echoing frames, and the
    /// libuv loop answering OMX envelopes in C.
    struct Servers {
        let omx: ChildProcess
        let raw: ChildProcess
        let floor: ChildProcess
        let protocolC: ChildProcess
        let dir: String
        /// Stops them, and the clients run against them, when the benchmark is terminated.
        let termination: BenchTermination

        /// Where the `omx-rawbench` servers report the connections they served.
        var rawReports: CServer { .reporting(to: "\(dir)/raw-server.out") }
        var floorReports: CServer { .reporting(to: "\(dir)/uv-server.out") }
        var protocolReports: CServer { .reporting(to: "\(dir)/protocol-server.out") }

        /// The run's cluster key and map, which every server reads.
        static func keyPath(in dir: String) -> String { "\(dir)/cluster.key" }
        static func mapPath(in dir: String) -> String { "\(dir)/bench.map" }

        /// Starts them on `basePort` (OMX), + 1 (raw), + 3 (bare loop) and + 4 (protocol in C)
        /// and Unix sockets in `dir`, and waits until each is ready. (+ 2 is the idle service's.)
        static func start(_ bench: RPCBenchmark, _ termination: BenchTermination, dir: String, basePort: Int, serverCPU: [String]) async throws -> Servers {
            let key = keyPath(in: dir)
            let servers = Servers(
                omx: try termination.spawn(
                    serverCPU + [bench.omxPath, "bench", "rpc-server", "--port", "\(basePort)", "--unix", "\(dir)/omx.sock", "--map", mapPath(in: dir), "--key", key],
                    stdoutPath: "\(dir)/omx-server.out", stderrPath: "\(dir)/omx-server.err"),
                raw: try termination.spawn(serverCPU + [bench.rawPath, "serve", "127.0.0.1", "\(basePort + 1)", "\(dir)/raw.sock"], stdoutPath: "\(dir)/raw-server.out"),
                floor: try termination.spawn(
                    serverCPU + [bench.rawPath, "serve-uv", "127.0.0.1", "\(basePort + 3)", "\(dir)/uv.sock"], stdoutPath: "\(dir)/uv-server.out"),
                protocolC: try termination.spawn(
                    serverCPU + [bench.rawPath, "serve-uv", "127.0.0.1", "\(basePort + 4)", "\(dir)/protocol.sock", key],
                    stdoutPath: "\(dir)/protocol-server.out", stderrPath: "\(dir)/protocol-server.err"),
                dir: dir, termination: termination)
            do {
                for (process, output) in [(servers.omx, "omx"), (servers.raw, "raw"), (servers.floor, "uv"), (servers.protocolC, "protocol")] {
                    try await bench.waitForLine("ready", in: "\(dir)/\(output)-server.out", process: process)
                }
            } catch {
                servers.stop()
                throw error
            }
            return servers
        }

        /// Stops every server and waits for it.
        func stop() {
            omx.send(SIGTERM)
            for process in [raw, floor, protocolC] { process.send(SIGKILL) }
            for process in [omx, raw, floor, protocolC] { process.wait() }
        }
    }
}
