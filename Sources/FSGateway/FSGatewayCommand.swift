import ArgumentParser
import CFuse
import Glibc
import Logging
import Shared

/// `omx-fsgateway`: serves a node's files; several instances per node may run.
public struct FSGatewayCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-fsgateway",
        abstract: "Serves one OMX node's files to the /mfs mounts of the cluster.",
        subcommands: [Serve.self, Mount.self],
        defaultSubcommand: Serve.self)

    public init() {}

    public struct Serve: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Runs one gateway instance.")

        @OptionGroup var options: ServiceOptions

        @Option(help: "The instance number on this node; each instance has its own port and socket.")
        var instance: UInt32 = 0

        @Option(help: "The tree this node exports (default: the configuration's, else /).")
        var export: String?

        @Option(help: "A path not to export (besides /proc, /sys and /dev), e.g. the /mfs mount; repeatable.")
        var exclude: [String] = ["/mfs"]

        @Option(
            name: .customLong("io-threads"),
            help: "Threads for calls that move data, list directories or reach file systems that may hang (NFS, SMB, FUSE: half at most for those; default: the configuration's, else 16).")
        var ioThreads: Int?

        public init() {}

        public func run() async throws {
            try requireMfsEnabled()
            let ioThreads = ioThreads ?? OMXConfig.active.mfs.ioThreads
            guard (2...1024).contains(ioThreads) else { throw ValidationError("--io-threads \(ioThreads): give 2 to 1024 (libuv's pool limit)") }
            // libuv sizes its pool from this at the first offload.
            setenv("UV_THREADPOOL_SIZE", String(ioThreads), 1)
            omx_malloc_keep_large_buffers()
            // What a caller creates gets the mode it asked for: the caller's umask is already in
            // it (the FUSE kernel applies it; an API client sends the mode it wants), and the
            // kernel's own rules (a setgid directory, a default ACL) still apply.
            umask(0)
            let host = try ServiceHost(kind: .fsgateway, instance: instance, options: options)
            let relays = GatewayDirectory(
                loop: host.loop, map: host.map, authenticator: host.authenticator, bindAddress: resolveIPv4(host.node.address).first,
                runDir: host.runDir, logger: host.logger)
            let tree = try ExportedTree(root: export ?? OMXConfig.active.mfs.export ?? "/", exclude: exclude, loop: host.loop)
            let feed = ChangeFeed()
            TreeWatcher.start(tree: tree, feed: feed, logger: host.logger)
            let leaseSeconds = OMXConfig.active.mfs.leaseSeconds
            let gateway = FileGateway(
                tree: tree, nodeID: host.node.id, relays: relays, feed: feed,
                lanes: FileCallLanes(loop: host.loop, threads: ioThreads, logger: host.logger, metrics: host.metrics), leaseNs: UInt64(leaseSeconds) * 1_000_000_000, logger: host.logger,
                metrics: host.metrics)
            gateway.register(on: host.server)
            try await host.run(background: {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(max(leaseSeconds / 8, 1)))
                    gateway.expireLeases()
                }
            })
        }
    }
}

/// The exit status when oMFS is turned off (sysexits' EX_CONFIG): the systemd units do not
/// restart on it (`RestartPreventExitStatus=78`).
public let mfsDisabledExitStatus: Int32 = 78

/// Prints which configuration line turned oMFS off and exits with `mfsDisabledExitStatus`.
func requireMfsEnabled() throws {
    let config = OMXConfig.active
    guard config.mfs.enabled else {
        fputs("Error: \(config.mfs.enabledSetAt ?? config.source): oMFS is turned off (mfs.enabled = no): omx-fsgateway neither serves nor mounts\n", stderr)
        throw ExitCode(mfsDisabledExitStatus)
    }
}
