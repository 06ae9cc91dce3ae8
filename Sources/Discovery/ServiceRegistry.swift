import Shared

/// The service instances registered with this node's Discovery, each with a lease.
struct ServiceRegistry {
    private var leases: [String: (instance: ServiceInstance, expiresMs: UInt64)] = [:]

    private static func key(_ kind: String, _ instance: UInt32) -> String { "\(kind)/\(instance)" }

    /// The registered instances, sorted by kind and instance.
    var instances: [ServiceInstance] {
        leases.values.map(\.instance).sorted { ($0.kind, $0.instance) < ($1.kind, $1.instance) }
    }

    /// Adds or replaces an instance with a lease ending at `expiresMs`.
    mutating func register(_ instance: ServiceInstance, expiresMs: UInt64) {
        leases[ServiceRegistry.key(instance.kind, instance.instance)] = (instance, expiresMs)
    }

    /// Extends a lease; false when there is none (it ran out: register again).
    mutating func renew(kind: String, instance: UInt32, expiresMs: UInt64) -> Bool {
        let key = ServiceRegistry.key(kind, instance)
        guard leases[key] != nil else { return false }
        leases[key]!.expiresMs = expiresMs
        return true
    }

    /// Removes an instance; false when it was not registered.
    mutating func deregister(kind: String, instance: UInt32) -> Bool {
        leases.removeValue(forKey: ServiceRegistry.key(kind, instance)) != nil
    }

    /// Drops the instances whose lease ended; true when any did.
    mutating func expire(nowMs: UInt64) -> Bool {
        let before = leases.count
        leases = leases.filter { $0.value.expiresMs > nowMs }
        return leases.count != before
    }
}
