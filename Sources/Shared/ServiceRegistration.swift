import Logging

/// Keeps one service instance registered with its node's Discovery (over the Unix socket):
/// registers, renews the lease, registers again when the lease was lost or Discovery
/// restarted, and deregisters when the service stops.
final class ServiceRegistration: @unchecked Sendable {
    static let leaseMs: UInt32 = 3_000
    static let renewEvery: Duration = .milliseconds(1_000)

    private let host: ServiceHost
    private let client: RPCClient

    init(host: ServiceHost) {
        self.host = host
        client = RPCClient(loop: host.loop, endpoint: .unix(path: "\(host.runDir)/\(ServiceKind.discovery.socketName())"), logger: host.logger)
    }

    private var lease: ServiceLease { ServiceLease(instance: host.serviceInstance, leaseMs: ServiceRegistration.leaseMs) }

    /// Registers, then renews until the task is cancelled.
    func keepRegistered() async {
        var registered = false
        var warned = false
        while !Task.isCancelled {
            do {
                _ = try await client.call(registered ? "Discovery.Renew" : "Discovery.Register", lease, returning: ServiceLease.self, timeout: .seconds(1))
                if !registered { host.logger.info("registered with Discovery at \(client.endpoint)") }
                registered = true
                warned = false
            } catch let error as RPCError where error.status == .notFound {
                registered = false
                continue
            } catch {
                registered = false
                if !warned { host.logger.warning("cannot register with Discovery at \(client.endpoint): \(error); retrying every second") }
                warned = true
            }
            try? await Task.sleep(for: ServiceRegistration.renewEvery)
        }
    }

    /// Removes the registration (best effort) and closes the client.
    func deregister() async {
        _ = try? await client.call("Discovery.Deregister", lease, returning: ServiceLease.self, timeout: .milliseconds(500))
        await client.close()
    }
}
