import Foundation
import Shared
import XCTest

/// What the /mfs tests need beyond a running cluster: root and /dev/fuse, and a mount that
/// lists the live nodes.
extension DiscoveryCluster {
    /// Fails the test loudly (instead of passing silently) when FUSE mounts cannot be made here.
    static func requireFUSE() throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse") else {
            XCTFail("the /mfs tests need root and /dev/fuse (a FUSE mount); they cannot run here")
            throw XCTSkip("no FUSE")
        }
    }

    /// A 2-node cluster whose node 1 mounts /mfs, and a fresh directory `name` on the disk in
    /// the cluster's directory.
    static func mountedWithDirectory(subnet: Int, _ name: String) async throws -> (cluster: DiscoveryCluster, disk: String) {
        try requireFUSE()
        let cluster = try DiscoveryCluster(subnet: subnet, nodes: 2)
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 2)
        XCTAssertTrue(isMounted, "node 1's /mfs lists nodes 1 and 2")
        let disk = "\(cluster.dir)/\(name)"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        return (cluster, disk)
    }

    /// Waits until the /mfs mount at `directory` lists nodes 1...`nodes`.
    func waitForMount(at directory: String, nodes: Int) async -> Bool {
        await waitFor(seconds: 10) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return (1...nodes).allSatisfy { names.contains(String($0)) }
        } != nil
    }

    /// The sum of `metric`'s samples whose labels hold every one of `labels`, over every
    /// service of every node (`omx metrics --all`).
    func metric(_ metric: String, _ labels: [String]) -> Double {
        omx(["metrics", "--all"]).stdout.split(separator: "\n")
            .filter { $0.hasPrefix(metric + "{") && labels.allSatisfy($0.contains) }
            .compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
    }
}
