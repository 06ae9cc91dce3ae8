import Foundation
import XCTest

/// Debian's Python and the client in clients/python (messages generated from proto/ by the
/// standard protobuf compiler): the contract spoken from outside Swift.
enum PythonClient {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("clients/python").path
    static let python = "/usr/bin/python3"

    /// Fails (instead of passing silently) without Debian's Python; generates the messages.
    static func requireAndGenerate() throws {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            XCTFail("Debian's /usr/bin/python3 is missing (scripts/setup.sh installs python3-protobuf); this test cannot run")
            throw XCTSkip("no /usr/bin/python3")
        }
        let generated = LocalCluster.runAbsolute("/bin/sh", ["\(directory)/generate.sh"])
        XCTAssertEqual(generated.status, 0, "generate.sh: \(generated.stderr)")
    }
}
