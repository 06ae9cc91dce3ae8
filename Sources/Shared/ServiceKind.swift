import ArgumentParser

/// The four services of a node.
public enum ServiceKind: String, CaseIterable, Sendable, ExpressibleByArgument {
    case discovery, balancer, migrator, fsgateway

    /// The TCP port of instance `instance` of this service (the same on every node): 7701,
    /// 7702, 7703 and 7710 + instance unless the configuration's [ports] says otherwise.
    public func port(instance: UInt32 = 0) -> Int {
        let ports = OMXConfig.active.ports
        switch self {
        case .discovery: return ports.discovery
        case .balancer: return ports.balancer
        case .migrator: return ports.migrator
        case .fsgateway: return ports.fsgateway + Int(instance)
        }
    }

    /// The Unix socket's file name inside a node's run directory.
    public func socketName(instance: UInt32 = 0) -> String {
        self == .fsgateway ? "fsgateway-\(instance).sock" : "\(rawValue).sock"
    }

    /// The executable that runs this service.
    public var executableName: String { "omx-\(rawValue)" }
}
