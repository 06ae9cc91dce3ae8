import ArgumentParser
import Logging
import Shared

/// Options every `omx` command takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "The configuration file (default: $OMX_CONFIG, else /etc/omx/omx.conf when it exists).")
    var configPath: String?

    @Option(name: .customLong("run-dir"), help: "The local node's run directory with its service sockets (default: $OMX_RUN_DIR, else /run/omx).")
    var runDir: String?

    @Option(name: .customLong("map"), help: "The cluster map (default: $OMX_MAP, else /etc/openmosix.map, /etc/mosix.map, /etc/hpc.map).")
    var mapPath: String?

    @Option(name: .customLong("key"), help: "The cluster key, for calls to other nodes (default: $OMX_KEY, else /etc/omx/cluster.key).")
    var keyPath: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .warning

    /// Loads the configuration file, so that ports, paths and the disclosure level come from it.
    mutating func validate() throws {
        try OMXConfig.activate(path: configPath)
    }
}
