import Glibc

/// The value of environment variable `name`, or nil when unset or empty.
public func environmentValue(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let text = String(cString: value)
    return text.isEmpty ? nil : text
}

/// The run directory: the option if given, else `OMX_RUN_DIR`, else the configuration's, else `/run/omx`.
public func resolveRunDir(_ option: String?) -> String {
    option ?? environmentValue("OMX_RUN_DIR") ?? OMXConfig.active.runDir ?? "/run/omx"
}

/// The cluster-key path: the option if given, else `OMX_KEY`, else the configuration's, else
/// `/etc/omx/cluster.key`.
public func resolveKeyPath(_ option: String?) -> String {
    option ?? environmentValue("OMX_KEY") ?? OMXConfig.active.keyPath ?? ClusterKey.defaultPath
}

/// The map path: the option if given, else `OMX_MAP`, else the configuration's, else nil (the
/// search path applies).
public func resolveMapPath(_ option: String?) -> String? {
    option ?? environmentValue("OMX_MAP") ?? OMXConfig.active.mapPath
}

/// Creates `path` and its missing parents with `mode`.
/// - Throws: `ConfigError` naming the path.
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    var built = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        built += "/" + component
        if mkdir(built, mode) != 0 && errno != EEXIST {
            throw ConfigError("\(built): cannot create directory: \(String(cString: strerror(errno)))")
        }
    }
}
