import Foundation
import XCTest

/// /mfs against the local disk, call for call (`DifferentialFuzzer`): through another node's
/// gateway (TCP) and the node's own (Unix socket), for fixed seeds, so a failure replays.
final class MfsDifferentialEndToEndTests: XCTestCase {
    func testRandomCallsAnswerThroughTheMountAsOnTheDisk() async throws {
        try PythonClient.requireAndGenerate()
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 104, "differential")
        let script = try DifferentialFuzzer.write(in: cluster.dir)
        for (seed, node) in [(1, 2), (2, 1), (3, 2), (4, 1)] {
            let (through, local) = ("\(disk)/through-\(seed)", "\(cluster.dir)/local-\(seed)")
            for directory in [through, local] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            let run = LocalCluster.runAbsolute(PythonClient.python, [script, "\(cluster.dir)/node-1/mfs/\(node)\(through)", local, "\(seed)", "3000"])
            XCTAssertEqual(run.status, 0, "seed \(seed) through /mfs/\(node):\n\(run.stdout)\(run.stderr)")
            XCTAssertTrue(run.stdout.hasPrefix("same "), run.stdout)
        }
        await cluster.down()
    }
}
