import ArgumentParser
import Glibc
import Shared

/// `omx cluster`: a whole cluster of real nodes on this machine (node k on 127.0.0.k).
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Starts and stops a local cluster: every node's services as separate processes on 127.0.0.k.",
        subcommands: [Up.self, Down.self])

    /// `omx cluster up`.
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Starts N nodes (any service not running yet); D/node-K/run is node K's run directory.")

        @Option(help: "How many nodes.")
        var nodes = 3

        @Option(help: "The cluster's directory: key, map, and each node's run directory, pids and logs.")
        var dir: String

        @Option(help: "FSGateway instances per node.")
        var gateways: UInt32 = 1

        @Option(name: .customLong("first-address"), help: "Node 1's address; node k gets the k-th address from it.")
        var firstAddress = "127.0.0.1"

        @Option(help: "Seconds to wait for every node to be alive.")
        var timeout = 20

        @Option(name: .customLong("config"), help: "A configuration file for every service (default: $OMX_CONFIG, else /etc/omx/omx.conf when it exists).")
        var configPath: String?

        func validate() throws {
            try OMXConfig.activate(path: configPath)
            guard (1...254).contains(nodes) else { throw ValidationError("--nodes must be 1 to 254") }
            guard let first = IPv4Address(firstAddress) else { throw ValidationError("--first-address \(firstAddress) is no IPv4 address") }
            guard Int(first.octets.3) + nodes - 1 <= 255 else { throw ValidationError("\(nodes) nodes from \(firstAddress) run past .255") }
        }

        func run() async throws {
            let cluster = try LocalClusterLauncher(dir: dir, configPath: configPath)
            let started = try cluster.up(nodes: nodes, gateways: gateways, firstAddress: firstAddress)
            print("started \(started) service processes for \(nodes) nodes in \(cluster.dir)")
            try await cluster.waitUntilAlive(nodes: nodes, timeoutSeconds: timeout)
            try await cluster.waitUntilServing(nodes: nodes, gateways: gateways, timeoutSeconds: timeout)
            try await cluster.waitUntilRegistered(nodes: nodes, gateways: gateways, timeoutSeconds: timeout)
            print("all \(nodes) nodes are alive and serving")
            print("export OMX_MAP=\(cluster.mapPath) OMX_KEY=\(cluster.keyPath) OMX_RUN_DIR=\(cluster.runDir(node: 1))")
        }
    }

    /// `omx cluster down`.
    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stops every process of the cluster in D (SIGTERM, then SIGKILL after 5 s).")

        @Option(help: "The cluster's directory.")
        var dir: String

        func run() async throws {
            let stopped = LocalClusterLauncher.down(dir: dir)
            print("stopped \(stopped) service processes in \(dir)")
        }
    }
}
