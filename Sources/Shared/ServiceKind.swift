import ArgumentParser

/// The four services of a node.
public enum ServiceKind: String, CaseIterable, Sendable, ExpressibleByArgument {
    case discovery, balancer, migrator, fsgateway

    /// The TCP port of instance `instance` of this service (the same on every node).
    public func port(instance: UInt32 = 0) -> Int {
        switch self {
        case .discovery: return 7701
        case .balancer: return 7702
        case .migrator: return 7703
        case .fsgateway: return 7710 + Int(instance)
        }
    }

    /// The Unix socket's file name inside a node's run directory.
    public func socketName(instance: UInt32 = 0) -> String {
        self == .fsgateway ? "fsgateway-\(instance).sock" : "\(rawValue).sock"
    }

    /// The executable that runs this service.
    public var executableName: String { "omx-\(rawValue)" }
}
