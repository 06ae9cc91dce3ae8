import ArgumentParser
import CFuse
import Glibc
import Logging
import Shared

extension FSGatewayCommand {
    /// `omx-fsgateway mount`: the cluster's files at MOUNTPOINT (/mfs).
    public struct Mount: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Mounts the cluster's files (oMFS): MOUNTPOINT/<node>/... is node <node>'s exported tree; here, home, magic and selected point at nodes.",
            discussion: "As mount.mfs (a link to omx-fsgateway), it is the mount(8) helper of the fstab line `mfs_mnt /mfs mfs dfsa=1 0 0`.")

        @OptionGroup var options: ServiceOptions

        @Argument(help: "Where to mount (default: the configuration's, else /mfs).")
        var mountpoint: String?

        @Option(name: .customLong("cache-seconds"), help: "How long the kernel caches attributes and names (default: the configuration's, else 1).")
        var cacheSeconds: Double?

        @Option(help: "on: a migrated job's file calls go straight to the node whose files they are (DFSA); off: through its home node (default: the configuration's, else on).")
        var dfsa: Switch?

        @Flag(help: "Go to the background once mounted (as a mount(8) helper does).")
        var background = false

        @Flag(name: .customLong("read-only"), help: "Mount read-only.")
        var readOnly = false

        public init() {}

        public func run() throws {
            // Before any thread exists: the parent returns once the mount is up.
            let readyFD = background ? omx_daemon_fork() : -1
            if background && readyFD < 0 { throw ConfigError("cannot go to the background: fork: \(String(cString: strerror(errno)))") }
            bootstrapLogging(level: options.logLevel)
            try requireMfsEnabled()
            omx_malloc_keep_large_buffers()
            let config = OMXConfig.active
            let mountpoint = mountpoint ?? config.mfs.mountpoint
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
            let direct = dfsa.map { $0 == .on } ?? config.mfs.dfsa
            let migrator = RPCClient(loop: loop, endpoint: .unix(path: "\(resolveRunDir(options.runDir))/\(ServiceKind.migrator.socketName())"), logger: logger)
            let locks = try MountLocks(directory: MfsLockMarkers.directory(runDir: resolveRunDir(options.runDir)))
            let mount = try MfsMount(nodeID: node.id, gateways: gateways, dfsa: direct, logger: logger, selections: selections, migrator: migrator, locks: locks)
            MfsMount.shared = mount
            try LeaseRenewer.start(for: mount, every: max(config.mfs.leaseSeconds / 4, 1))
            try ChangeFollower(cache: mount.cache, gateways: gateways, client: mount.client, logger: logger).start()
            try makeDirectories(mountpoint)
            var operations = MfsOperations.operations()
            logger.info("mounting the cluster's files at \(mountpoint) for node \(node.id) (DFSA \(direct ? "on" : "off"))")
            let fuseOptions = "fsname=mfs_mnt,subtype=mfs,allow_other" + (readOnly ? ",ro" : "")
            let result = omx_fuse_run(mountpoint, &operations, fuseOptions, cacheSeconds ?? config.mfs.cacheSeconds ?? 1, readyFD)
            guard result == 0 else { throw ConfigError("\(mountpoint): the FUSE mount failed (\(result)); is /dev/fuse there and the mount point empty?") }
            logger.info("unmounted \(mountpoint)")
        }
    }

    /// on or off.
    public enum Switch: String, ExpressibleByArgument, Sendable {
        case on, off
    }
}

/// The arguments of `omx-fsgateway mount` for mount(8)'s call of the helper `mount.mfs`:
/// `mount.mfs SOURCE DIR [-sfnv] [-o OPTIONS]`. OPTIONS may hold `dfsa=0|1`, `cache=SECONDS`,
/// `config=`, `node=`, `map=`, `key=`, `run_dir=`, `ro`, `foreground`, and mount(8)'s generic
/// options, which mean nothing here.
/// - Throws: `ConfigError` naming an unknown option or a missing argument.
public func mountHelperArguments(_ arguments: [String]) throws -> [String] {
    var positional: [String] = []
    var options: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "-o" {
            guard index + 1 < arguments.count else { throw ConfigError("mount.mfs: -o needs a value") }
            options += arguments[index + 1].split(separator: ",").map(String.init)
            index += 2
            continue
        }
        if argument.hasPrefix("-o") {
            options += argument.dropFirst(2).split(separator: ",").map(String.init)
        } else if argument.hasPrefix("-") {
            // -s (sloppy), -f (fake), -n (no mtab), -v (verbose): nothing to do.
            guard argument.dropFirst().allSatisfy({ "sfnv".contains($0) }) else { throw ConfigError("mount.mfs: unknown flag \(argument)") }
        } else {
            positional.append(argument)
        }
        index += 1
    }
    guard positional.count == 2 else { throw ConfigError("mount.mfs: usage: mount.mfs mfs_mnt MOUNTPOINT [-o dfsa=0|1,...] (got \(positional.count) arguments)") }
    var result = ["mount", positional[1]]
    var background = true
    let generic: Set<String> = [
        "rw", "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser", "owner", "group", "exec", "noexec", "suid", "nosuid",
        "dev", "nodev", "atime", "noatime", "relatime", "strictatime", "nodiratime", "diratime", "sync", "async", "loud", "silent",
    ]
    let valued = ["cache": "--cache-seconds", "config": "--config", "node": "--node-id", "map": "--map", "key": "--key", "run_dir": "--run-dir"]
    for option in options where !option.isEmpty {
        let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
        switch (parts[0], parts.count == 2 ? parts[1] : nil) {
        case ("dfsa", "1"?), ("dfsa", "on"?): result += ["--dfsa", "on"]
        case ("dfsa", "0"?), ("dfsa", "off"?): result += ["--dfsa", "off"]
        case ("ro", nil): result.append("--read-only")
        case ("foreground", nil): background = false
        case let (name, value?) where valued[name] != nil: result += [valued[name]!, value]
        case let (name, _) where generic.contains(name) || name.hasPrefix("x-") || name == "comment": break
        default: throw ConfigError("mount.mfs: unknown option \"\(option)\" (mfs takes dfsa=0|1, cache=SECONDS, config=, node=, map=, key=, run_dir=, ro, foreground)")
        }
    }
    if background { result.append("--background") }
    return result
}
