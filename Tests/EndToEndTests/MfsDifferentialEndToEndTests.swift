import Foundation
import XCTest

/// /mfs against the local disk, call for call (`DifferentialFuzzer`, `HardLinkChecks`): through
/// another node's gateway (TCP) and the node's own (Unix socket), for fixed seeds, so a failure
/// replays.
final class MfsDifferentialEndToEndTests: XCTestCase {
    func testRandomCallsAnswerThroughTheMountAsOnTheDisk() async throws {
        try PythonClient.requireAndGenerate()
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 104, "differential")
        // Seeds 34 to 49 make renames onto directories holding hidden files, and hard links
        // renamed onto each other (open or not).
        try compare(seeds: [(1, 2), (2, 1), (3, 2), (4, 1), (34, 1), (41, 2), (47, 2), (49, 2)], cluster, disk)
        await cluster.down()
    }

    /// The same as a user other than root (uid 65534) in directories it owns, whose chmods
    /// take its own search permission away: refusals come as on the disk, also for a file it
    /// holds open (reached through its descriptor, not by its path).
    func testRandomCallsOfAnotherUserAnswerThroughTheMountAsOnTheDisk() async throws {
        try PythonClient.requireAndGenerate()
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 106, "differential")
        chmod(cluster.dir, 0o755)
        // Each of these seeds differed before: a holder reached by path (13 to 20), a hard link
        // of a holder's file kept its old mode (26, 35), writes through two descriptors landed
        // out of order (46), a file open under a hidden name kept its old size and mode (102).
        try compare(seeds: [(13, 2), (15, 2), (19, 1), (20, 2), (26, 1), (35, 2), (46, 1), (102, 1)], cluster, disk, uid: 65534)
        await cluster.down()
    }

    /// Runs `DifferentialFuzzer` for each seed through node 1's mount of the node given with it,
    /// against a directory of the local disk, as `uid` (root when nil).
    private func compare(seeds: [(Int, Int)], _ cluster: DiscoveryCluster, _ disk: String, uid: UInt32? = nil) throws {
        let script = try DifferentialFuzzer.write(in: cluster.dir)
        chmod(script, 0o644)
        let user = uid.map { ["/usr/bin/setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups"] } ?? []
        for (seed, node) in seeds {
            let (through, local) = ("\(disk)/through-\(seed)", "\(cluster.dir)/local-\(seed)")
            for directory in [through, local] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                if let uid { XCTAssertEqual(chown(directory, uid, uid), 0, directory) }
            }
            let command = user + [PythonClient.python, script, "\(cluster.dir)/node-1/mfs/\(node)\(through)", local, "\(seed)", "3000"]
            let run = LocalCluster.runAbsolute(command[0], Array(command.dropFirst()))
            XCTAssertEqual(run.status, 0, "seed \(seed) through /mfs/\(node):\n\(run.stdout)\(run.stderr)")
            XCTAssertTrue(run.stdout.hasPrefix("same "), run.stdout)
        }
    }

    /// A change through one hard link of a file shows through the others at once, as on the
    /// disk (`HardLinkChecks`), through both gateways.
    func testHardLinksShowEachOthersChangesAtOnce() async throws {
        try PythonClient.requireAndGenerate()
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 105, "links")
        let script = try HardLinkChecks.write(in: cluster.dir)
        for node in [2, 1] {
            let directory = "\(disk)/through-\(node)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let run = LocalCluster.runAbsolute(PythonClient.python, [script, "\(cluster.dir)/node-1/mfs/\(node)\(directory)", "5"])
            XCTAssertEqual(run.status, 0, "through /mfs/\(node):\n\(run.stdout)\(run.stderr)")
            XCTAssertTrue(run.stdout.hasPrefix("same "), run.stdout)
        }
        await cluster.down()
    }
}
