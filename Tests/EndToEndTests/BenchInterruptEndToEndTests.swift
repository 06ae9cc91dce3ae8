import Foundation
import Shared
import XCTest

/// A benchmark that runs its own local cluster (`omx bench locks`, `mfs`, `migrate`), stopped
/// with ^C or SIGTERM part way: its services run in sessions of their own, out of the signal's
/// reach, so the benchmark must stop them itself.
final class BenchInterruptEndToEndTests: XCTestCase {
    func testAnInterruptedBenchmarkLeavesNoClusterOrMountBehind() async throws {
        try DiscoveryCluster.requireFUSE()
        for signal in [SIGINT, SIGTERM] {
            let dir = NSTemporaryDirectory() + "omx-bench-interrupted-\(UUID().uuidString.prefix(8))"
            let output = dir + ".out"
            defer {
                unlink(output)
                // Whatever the benchmark left, should this test fail.
                _ = LocalCluster.run("omx", ["cluster", "down", "--dir", dir])
                removeTree(dir)
            }
            let bench = try ChildProcess.spawn(
                siblingExecutable("omx"), ["bench", "locks", "--pairs", "1000000", "--dir", dir, "--first-address", "127.0.112.1"],
                stdoutPath: output, stderrPath: output)
            // Interrupted once both nodes' /mfs are mounted, while it measures.
            let mounted = await waitFor(seconds: 60) { MountInfo.mountPoints(atOrBeneath: dir).count == 2 }
            XCTAssertTrue(mounted, "the benchmark's cluster mounted its /mfs: \((try? readTextFile(output)) ?? "")")
            try await Task.sleep(for: .seconds(1))
            bench.send(signal)
            let status = await bench.wait(milliseconds: 30_000)
            if status == nil {
                bench.send(SIGKILL)
                bench.wait()
            }
            XCTAssertEqual(status, 128 + signal, "signal \(signal): \((try? readTextFile(output)) ?? "")")
            XCTAssertTrue(((try? readTextFile(output)) ?? "").contains("stopping the benchmark's cluster in \(dir)"))
            XCTAssertEqual(MountInfo.mountPoints(atOrBeneath: dir), [], "no /mfs is left mounted")
            XCTAssertEqual(processes(mentioning: dir), [], "no service of its cluster is left running")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "its directory is gone")
        }
    }

    /// The command lines of the processes whose arguments name `text`.
    private func processes(mentioning text: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
            guard Int32(name) != nil, let bytes = try? readFileBytes("/proc/\(name)/cmdline") else { return nil }
            let line = String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? line : nil
        }
    }

    private func waitFor(seconds: Double, _ condition: () -> Bool) async -> Bool {
        let deadline = monotonicNs() + UInt64(seconds * 1e9)
        while monotonicNs() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }
}
