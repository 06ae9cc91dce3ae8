import Foundation
import Shared
import XCTest

/// `omx map check` and `omx keygen` as a user runs them.
final class CommandLineEndToEndTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "omx-cli-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        removeTree(dir)
    }

    private func write(_ name: String, _ text: String) throws -> String {
        let path = "\(dir)/\(name)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testMapCheckPrintsTheExpandedTableAndTheDigest() throws {
        let path = try write("openmosix.map", "# the HOWTO's range line\n1 192.168.1.1 4\n4 10.0.0.4 ALIAS\n")
        let result = LocalCluster.run("omx", ["map", "check", "-f", path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let digest = try ClusterMap.load(path: path).digest
        XCTAssertEqual(result.stdout, """
            ID  ADDRESS      ALIASES
            1   192.168.1.1  -
            2   192.168.1.2  -
            3   192.168.1.3  -
            4   192.168.1.4  10.0.0.4
            4 nodes from \(path), digest \(digest)

            """)
    }

    func testMapCheckJSONIsAnArrayOfNodes() throws {
        let path = try write("openmosix.map", "1 127.0.0.1 2\n2 10.1.1.2 0\n")
        let result = LocalCluster.run("omx", ["map", "check", "-f", path, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let nodes = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
        XCTAssertEqual(nodes?.count, 2)
        XCTAssertEqual(nodes?[0]["id"] as? Int, 1)
        XCTAssertEqual(nodes?[0]["address"] as? String, "127.0.0.1")
        XCTAssertEqual(nodes?[0]["aliases"] as? [String], [])
        XCTAssertEqual(nodes?[1]["aliases"] as? [String], ["10.1.1.2"])
    }

    func testMapCheckReportsEveryErrorWithFileAndLineAndExitsWithStatusOne() throws {
        let path = try write("bad.map", "1 10.0.0.1 1\n1 10.0.0.2 1\n9 10.0.0.250 10\n")
        let result = LocalCluster.run("omx", ["map", "check", "-f", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderr, """
            \(path):2: node 1 is defined twice: already on line 1
            \(path):3: range 10 from 10.0.0.250 runs past .255

            """)
    }

    func testMapCheckReadsOMXMapWhenNoFileIsNamed() throws {
        let path = try write("env.map", "5 127.0.0.5 1\n")
        let result = LocalCluster.run("omx", ["map", "check"], environment: ["OMX_MAP": path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("5   127.0.0.5"), result.stdout)
    }

    func testKeygenWritesAPrivateKeyAndRefusesToOverwriteIt() throws {
        let path = "\(dir)/keys/cluster.key"
        let first = LocalCluster.run("omx", ["keygen", "-o", path])
        XCTAssertEqual(first.status, 0, first.stderr)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let key = try ClusterKey.load(from: path)

        let again = LocalCluster.run("omx", ["keygen", "-o", path])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("file exists (pass --force to replace it)"), again.stderr)
        XCTAssertEqual(try ClusterKey.load(from: path), key, "the old key is untouched")

        XCTAssertEqual(LocalCluster.run("omx", ["keygen", "-o", path, "--force"]).status, 0)
        XCTAssertNotEqual(try ClusterKey.load(from: path), key)
    }
}
