import Foundation
import XCTest

/// The protoc-c output in proto/c is committed; it must be what proto/generate.sh makes now.
final class ProtoFreshnessTests: XCTestCase {
    func testCommittedProtocOutputMatchesTheProtoFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("omx-proto-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let generate = Process()
        generate.executableURL = root.appendingPathComponent("proto/generate.sh")
        generate.arguments = [output.path]
        try generate.run()
        generate.waitUntilExit()
        XCTAssertEqual(generate.terminationStatus, 0, "proto/generate.sh failed (is protoc-c installed? run scripts/setup.sh)")
        let committed = root.appendingPathComponent("proto/c")
        let fresh = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: committed.path).sorted(), fresh)
        for name in fresh {
            XCTAssertEqual(
                try Data(contentsOf: committed.appendingPathComponent(name)), try Data(contentsOf: output.appendingPathComponent(name)),
                "proto/c/\(name) is stale: run proto/generate.sh and commit the result")
        }
    }
}
