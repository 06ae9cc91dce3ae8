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

        public init() {}

        public func run() async throws {
            try requireMfsEnabled()
            let host = try ServiceHost(kind: .fsgateway, instance: instance, options: options)
            let gateway = FileGateway(tree: try ExportedTree(root: export ?? OMXConfig.active.mfs.export ?? "/", exclude: exclude), logger: host.logger, metrics: host.metrics)
            gateway.register(on: host.server)
            try await host.run(background: {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(60))
                    gateway.expireLeases()
                }
            })
        }
    }

    /// `omx-fsgateway mount`: the cluster's files at MOUNTPOINT (/mfs).
    public struct Mount: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Mounts the cluster's files (oMFS): MOUNTPOINT/<node>/... is node <node>'s exported tree; here and home point at nodes.")

        @OptionGroup var options: ServiceOptions

        @Argument(help: "Where to mount (default: the configuration's, else /mfs).")
        var mountpoint: String?

        @Option(name: .customLong("cache-seconds"), help: "How long the kernel caches attributes and names (default: the configuration's, else 1).")
        var cacheSeconds: Double?

        public init() {}

        public func run() throws {
            bootstrapLogging(level: options.logLevel)
            try requireMfsEnabled()
            let mountpoint = mountpoint ?? OMXConfig.active.mfs.mountpoint
            let cacheSeconds = cacheSeconds ?? OMXConfig.active.mfs.cacheSeconds ?? 1
            let map = try ClusterMap.load(path: resolveMapPath(options.mapPath))
            let node = try options.nodeID.flatMap { id in
                guard let node = map.node(id: id) else { throw ConfigError("--node-id \(id): \(map.source) has no node \(id)") }
                return node
            } ?? map.localNode()
            let key = try ClusterKey.load(from: resolveKeyPath(options.keyPath))
            var logger = Logger(label: "omx-mfs")
            logger[metadataKey: "node"] = "\(node.id)"
            let loop = try EventLoop()
            let gateways = GatewayDirectory(
                loop: loop, map: map, authenticator: Authenticator(key: key, nodeID: node.id), bindAddress: resolveIPv4(node.address).first,
                runDir: resolveRunDir(options.runDir), logger: logger)
            let selections = "\(resolveRunDir(options.runDir))/mfs-selected"
            try makeDirectories(selections, mode: 0o1777)
            chmod(selections, 0o1777)
            MfsMount.shared = MfsMount(nodeID: node.id, gateways: gateways, logger: logger, selections: selections)
            try makeDirectories(mountpoint)
            var operations = MfsOperations.operations()
            logger.info("mounting the cluster's files at \(mountpoint) for node \(node.id)")
            let result = omx_fuse_run(mountpoint, &operations, "fsname=mfs_mnt,subtype=mfs,allow_other", cacheSeconds)
            guard result == 0 else { throw ConfigError("\(mountpoint): the FUSE mount failed (\(result)); is /dev/fuse there and the mount point empty?") }
            logger.info("unmounted \(mountpoint)")
        }
    }
}

/// The exit status when oMFS is turned off (sysexits' EX_CONFIG): the systemd units do not
/// restart on it (`RestartPreventExitStatus=78`).
public let mfsDisabledExitStatus: Int32 = 78

/// Prints which configuration line turned oMFS off and exits with `mfsDisabledExitStatus`.
private func requireMfsEnabled() throws {
    let config = OMXConfig.active
    guard config.mfs.enabled else {
        fputs("Error: \(config.mfs.enabledSetAt ?? config.source): oMFS is turned off (mfs.enabled = no): omx-fsgateway neither serves nor mounts\n", stderr)
        throw ExitCode(mfsDisabledExitStatus)
    }
}
