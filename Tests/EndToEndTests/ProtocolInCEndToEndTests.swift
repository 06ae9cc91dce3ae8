import Foundation
import Logging
import Shared
import XCTest

/// OMX's protocol written in C (`omx-rawbench`, the protocol floor of `omx bench rpc`) against
/// OMX's Swift runtime, both ways: OMX's clients call the C server and the C client calls an
/// OMX server, signed with the cluster key over TCP and unsigned over a Unix socket. A C side
/// that drifted from `proto/README.md` fails here rather than measuring something else; a wrong
/// key is refused on either side.
final class ProtocolInCEndToEndTests: XCTestCase {
    private var dir = ""
    private var keyPath: String { "\(dir)/cluster.key" }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "omx-protocol-c-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ClusterKey.generate().write(to: keyPath, overwrite: false)
        try ClusterKey.generate().write(to: "\(dir)/other.key", overwrite: false)
        try writeTextFile("\(dir)/bench.map", "1 127.0.0.1 1\n")
    }

    override func tearDown() {
        removeTree(dir)
    }

    func testOMXClientsCallTheCServer() async throws {
        let port = Int.random(in: 41_000...49_000)
        let server = try start([siblingExecutable("omx-rawbench"), "serve-uv", "127.0.0.1", "\(port)", "\(dir)/c.sock", keyPath], name: "c-server")
        defer { stop(server) }
        let key = try ClusterKey.load(from: keyPath)
        let loop = try EventLoop()
        let body = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        for endpoint in [RPCEndpoint.tcp(host: "127.0.0.1", port: port), .unix(path: "\(dir)/c.sock")] {
            let signed = endpoint.isTCP ? Authenticator(key: key, nodeID: 1) : nil
            let client = RPCClient(loop: loop, endpoint: endpoint, configuration: .init(authenticator: signed), logger: Logger(label: "test"))
            for size in [0, 64, body.count] {
                let answer = try await client.call("Bench.Echo", Array(body.prefix(size)))
                XCTAssertEqual(answer, Array(body.prefix(size)), "\(endpoint): Bench.Echo of \(size) bytes through the C server")
            }
            do {
                _ = try await client.call("Discovery.Members", [])
                XCTFail("\(endpoint): the C server answers only Bench.Echo")
            } catch let error as RPCError {
                XCTAssertEqual(error.status, .unimplemented, "\(endpoint): \(error)")
            }
            await client.close()
        }
        let blocking = BlockingRPCClient(host: "127.0.0.1", port: port, authenticator: Authenticator(key: key, nodeID: 1), bindAddress: nil)
        XCTAssertEqual(try blocking.call("Bench.Echo", Array(body.prefix(64))), Array(body.prefix(64)), "blocking client through the C server")

        let stranger = RPCClient(
            loop: loop, endpoint: .tcp(host: "127.0.0.1", port: port),
            configuration: .init(authenticator: Authenticator(key: try ClusterKey.load(from: "\(dir)/other.key"), nodeID: 1)), logger: Logger(label: "test"))
        do {
            _ = try await stranger.call("Bench.Echo", [1, 2, 3], timeout: .seconds(5))
            XCTFail("the C server answered a call signed with another key")
        } catch {}
        await stranger.close()
        await loop.shutdown()
        XCTAssertTrue(try readTextFile("\(dir)/c-server.err").contains("bad MAC"), "the C server says why it refused: \((try? readTextFile("\(dir)/c-server.err")) ?? "")")
    }

    func testCClientCallsAnOMXServer() throws {
        let port = Int.random(in: 41_000...49_000)
        let server = try start(
            [siblingExecutable("omx"), "bench", "rpc-server", "--port", "\(port)", "--unix", "\(dir)/omx.sock", "--map", "\(dir)/bench.map", "--key", keyPath],
            name: "omx-server")
        defer { stop(server) }
        // Blocking reads and writes, then from a bare libuv loop.
        for client in ["pingpong-omx", "pingpong-uv-omx"] {
            for transport in [["tcp", "127.0.0.1", "\(port)", keyPath], ["unix", "\(dir)/omx.sock"]] {
                for size in ["64", "70000"] {
                    let run = LocalCluster.run("omx-rawbench", [client] + transport + [size, "200"])
                    XCTAssertEqual(run.status, 0, "\(client) over \(transport[0]), \(size) B: \(run.stderr)")
                    XCTAssertEqual(run.stdout.split(separator: "\n").dropLast().count, 200, "\(client), \(transport[0]), \(size) B: one line per measured call")
                }
            }
            let refused = LocalCluster.run("omx-rawbench", [client, "tcp", "127.0.0.1", "\(port)", "\(dir)/other.key", "64", "10"])
            XCTAssertEqual(refused.status, 1, "\(client) with another key: \(refused.stdout)")
            XCTAssertTrue(refused.stderr.contains("bad MAC"), "the OMX server's refusal reaches \(client): \(refused.stderr)")
        }
    }

    func testCClientCallsTheCServer() throws {
        let port = Int.random(in: 41_000...49_000)
        let server = try start([siblingExecutable("omx-rawbench"), "serve-uv", "127.0.0.1", "\(port)", "\(dir)/c.sock", keyPath], name: "c-server")
        defer { stop(server) }
        for client in ["pingpong-omx", "pingpong-uv-omx"] {
            for transport in [["tcp", "127.0.0.1", "\(port)", keyPath], ["unix", "\(dir)/c.sock"]] {
                let run = LocalCluster.run("omx-rawbench", [client] + transport + ["64", "200"])
                XCTAssertEqual(run.status, 0, "protocol floor, \(client) over \(transport[0]): \(run.stderr)")
            }
        }
        let refused = LocalCluster.run("omx-rawbench", ["pingpong-uv-omx", "tcp", "127.0.0.1", "\(port)", "\(dir)/other.key", "64", "10"])
        XCTAssertNotEqual(refused.status, 0, "the C server answered a C client with another key")
        let deadline = monotonicNs() + 5_000_000_000
        var served: [Int] = []
        while served.count < 4 && monotonicNs() < deadline {
            usleep(20_000)
            served = servedFrames("\(dir)/c-server.out")
        }
        XCTAssertEqual(Array(served.prefix(4)), [220, 220, 220, 220], "frames answered per connection, warm-up included")
    }

    /// Starts a server, its output in `dir`/`name`.out and .err, and waits for its "ready".
    private func start(_ command: [String], name: String) throws -> ChildProcess {
        let server = try ChildProcess.spawn(command[0], Array(command.dropFirst()), stdoutPath: "\(dir)/\(name).out", stderrPath: "\(dir)/\(name).err")
        do {
            try waitForReady("\(dir)/\(name).out", stderr: "\(dir)/\(name).err", server)
        } catch {
            stop(server)
            throw error
        }
        return server
    }

    private func stop(_ server: ChildProcess) {
        server.send(SIGTERM)
        server.wait()
    }
}

extension RPCEndpoint {
    fileprivate var isTCP: Bool {
        if case .tcp = self { return true }
        return false
    }
}
