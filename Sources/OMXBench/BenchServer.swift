import Glibc
import Logging
import Shared

/// The server side of `omx bench rpc`: an RPC server whose `Bench.Echo` returns the request's
/// body, on TCP (authenticated, map-checked) and on a Unix socket, counting its calls in
/// metrics: like every service.
public enum BenchServer {
    /// The echo method's name.
    public static let echoMethod = "Bench.Echo"

    /// Serves until SIGTERM or SIGINT; prints "ready" once both endpoints listen.
    public static func serve(tcpPort: Int, unixPath: String, map: ClusterMap, key: ClusterKey) async throws {
        let loop = try EventLoop()
        var configuration = RPCServer.Configuration(
            name: "bench server", authenticator: Authenticator(key: key, nodeID: map.nodes[0].id), allowedAddresses: map.resolvedAddresses())
        configuration.metrics = MetricsRegistry()
        let server = RPCServer(loop: loop, configuration: configuration, logger: Logger(label: "omx-bench-server"))
        server.registerImmediate(echoMethod) { request in request.body }
        try await server.listen(on: .tcp(host: "127.0.0.1", port: tcpPort))
        try await server.listen(on: .unix(path: unixPath))
        print("ready")
        fflush(stdout)
        _ = await SignalWatcher.waitForTermination(on: loop)
        await server.shutdown(grace: .seconds(1))
        await loop.shutdown()
    }
}
