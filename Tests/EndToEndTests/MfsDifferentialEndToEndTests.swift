import Foundation
import XCTest

/// /mfs against the local disk, call for call (`DifferentialFuzzer`, `HardLinkChecks`): through
/// another node's gateway (TCP) and the node's own (Unix socket), for fixed seeds, so a failure
/// replays.
final class MfsDifferentialEndToEndTests: XCTestCase {
    func testRandomCallsAnswerThroughTheMountAsOnTheDisk() async throws {
        try PythonClient.requireAndGenerate()
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 104, "differential")
        let script = try DifferentialFuzzer.write(in: cluster.dir)
        // Seeds 34 to 49 make renames onto directories holding hidden files, and hard links
        // renamed onto each other (open or not).
        for (seed, node) in [(1, 2), (2, 1), (3, 2), (4, 1), (34, 1), (41, 2), (47, 2), (49, 2)] {
            let (through, local) = ("\(disk)/through-\(seed)", "\(cluster.dir)/local-\(seed)")
            for directory in [through, local] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            let run = LocalCluster.runAbsolute(PythonClient.python, [script, "\(cluster.dir)/node-1/mfs/\(node)\(through)", local, "\(seed)", "3000"])
            XCTAssertEqual(run.status, 0, "seed \(seed) through /mfs/\(node):\n\(run.stdout)\(run.stderr)")
            XCTAssertTrue(run.stdout.hasPrefix("same "), run.stdout)
        }
        await cluster.down()
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
