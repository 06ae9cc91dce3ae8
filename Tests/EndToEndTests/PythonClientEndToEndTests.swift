import Foundation
import Shared
import XCTest

/// The Python client in clients/python, generated from proto/ by the standard protobuf
/// compiler, against a live cluster: the contract works outside Swift.
final class PythonClientEndToEndTests: XCTestCase {
    private let clientDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("clients/python").path

    private func run(_ executable: String, _ arguments: [String]) -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch { return CommandResult(status: -1, stdout: "", stderr: "cannot run \(executable): \(error)") }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    func testThePythonClientAuthenticatesAndPrintsTheMembership() async throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return XCTFail("Debian's /usr/bin/python3 is missing (scripts/setup.sh installs python3-protobuf); this test cannot run")
        }
        let generated = run("/bin/sh", ["\(clientDir)/generate.sh"])
        XCTAssertEqual(generated.status, 0, "generate.sh: \(generated.stderr)")
        let selfTest = run(python, ["\(clientDir)/print_members.py", "--self-test"])
        XCTAssertEqual(selfTest.status, 0, selfTest.stdout + selfTest.stderr)

        let cluster = try DiscoveryCluster(subnet: 38, nodes: 3)
        let ready = await cluster.waitFor(seconds: 10) {
            for node in 1...3 where (await cluster.members(seenBy: node))?.members.allSatisfy({ $0.state == .alive }) != true { return false }
            return true
        }
        XCTAssertNotNil(ready)
        let overTCP = run(python, ["\(clientDir)/print_members.py", "--map", cluster.mapPath, "--key", cluster.keyPath, "--node", "2", "--from-address", "127.0.38.1"])
        XCTAssertEqual(overTCP.status, 0, overTCP.stderr)
        XCTAssertEqual(overTCP.stdout, "1 127.0.38.1 alive \(omxVersion)\n2 127.0.38.2 alive \(omxVersion)\n3 127.0.38.3 alive \(omxVersion)\n")
        let overUnix = run(python, ["\(clientDir)/print_members.py", "--unix", "\(cluster.runDir(3))/discovery.sock"])
        XCTAssertEqual(overUnix.stdout, overTCP.stdout, overUnix.stderr)

        let wrongKey = cluster.dir + "/wrong.key"
        try ClusterKey.generate().write(to: wrongKey, overwrite: false)
        let refused = run(python, ["\(clientDir)/print_members.py", "--map", cluster.mapPath, "--key", wrongKey, "--node", "2", "--from-address", "127.0.38.1"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("UNAUTHENTICATED"), refused.stderr)
        await cluster.down()
    }
}
