import Glibc
import Logging
import Shared

/// Follows the changes of every node's tree (`FSGateway.Changes`, long polls from a thread
/// per node) and keeps the mount's cache of that node true. A node is cached only while its
/// changes are followed: when its gateway cannot be reached, cannot see changes made on its
/// node, or says changes were lost, its cache is emptied (and, if it can, started again).
final class ChangeFollower: Sendable {
    let cache: MountCache
    let gateways: GatewayDirectory
    /// This mount's id, sent with every call: the changes it makes are not reported to it.
    let client: UInt64
    let logger: Logger

    init(cache: MountCache, gateways: GatewayDirectory, client: UInt64, logger: Logger) {
        self.cache = cache
        self.gateways = gateways
        self.client = client
        self.logger = logger
    }

    /// Starts following every node of the map, each from a thread of its own, for the life
    /// of the mount.
    /// - Throws: `UVError` when a thread cannot be started.
    func start() throws {
        for node in gateways.map.nodes.map(\.id) {
            try startDetachedThread(named: "omx-mfs-follow") { [self] in follow(node) }
        }
    }

    /// Follows `node`: while its gateway answers, its cache is used; while it does not, the
    /// cache is empty and the gateway asked again each second.
    private func follow(_ node: UInt32) {
        var since: UInt64 = 0
        var instance: String?
        var unwatched: [String]?
        var stopped = false
        while true {
            do {
                let request = ChangesRequest(since: since, waitMs: since == 0 ? 0 : 20_000, client: client)
                let (answer, from) = try gateways.changes(node, request, from: instance)
                if !answer.watching {
                    cache.stopFollowing(node)
                } else if since == 0 || answer.reset || answer.unwatched != unwatched || !cache.follows(node) {
                    if since != 0 { logger.info("node \(node)'s changes were lost: its cache starts empty") }
                    cache.follow(node, unwatched: answer.unwatched)
                }
                for change in answer.changes { cache.apply(node, change) }
                if stopped {
                    logger.notice("following node \(node)'s changes again (gateway \(from)); its files are cached again")
                    stopped = false
                }
                (since, instance, unwatched) = (answer.next, from, answer.unwatched)
            } catch {
                if since != 0 {
                    logger.notice("stopped following node \(node)'s changes (\(error)); its files are not cached until it answers again")
                    stopped = true
                }
                cache.stopFollowing(node)
                (since, instance, unwatched) = (0, nil, nil)
                usleep(1_000_000)
            }
        }
    }
}
