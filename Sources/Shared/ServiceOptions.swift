import ArgumentParser
import Logging

/// The options every `omx-*` service takes.
public struct ServiceOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "The configuration file (default: $OMX_CONFIG, else /etc/omx/omx.conf when it exists).")
    public var configPath: String?

    @Option(name: .customLong("map"), help: "The cluster map (default: $OMX_MAP, else the first of /etc/openmosix.map, /etc/mosix.map, /etc/hpc.map).")
    public var mapPath: String?

    @Option(name: .customLong("node-id"), help: "This node's id (default: the map node whose address is local).")
    public var nodeID: UInt32?

    @Option(name: .customLong("run-dir"), help: "Where the Unix sockets live (default: $OMX_RUN_DIR, else /run/omx).")
    public var runDir: String?

    @Option(name: .customLong("key"), help: "The cluster key file (default: $OMX_KEY, else /etc/omx/cluster.key).")
    public var keyPath: String?

    @Option(help: "The TCP port (default: the service's own, the same on every node).")
    public var port: Int?

    @Option(name: .customLong("max-frame-size"), help: "The largest frame accepted, in bytes.")
    public var maxFrameSize: Int = Frame.defaultMaxSize

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default: the configuration's, else info).")
    public var logLevelOption: Logger.Level?

    public init() {}

    /// Loads the configuration file, so that every default below can come from it.
    public mutating func validate() throws {
        try OMXConfig.activate(path: configPath)
    }

    /// The log level: the option, else the configuration's, else info.
    public var logLevel: Logger.Level {
        logLevelOption ?? OMXConfig.active.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info
    }
}
