import Foundation
import Shared
import XCTest

/// A benchmark that runs its own servers (`omx bench rpc`) or local cluster (`omx bench locks`,
/// `mfs`, `migrate`), stopped with ^C or SIGTERM part way: what it started is out of the
/// signal's reach (a cluster's services run in sessions of their own; a SIGTERM to the
/// benchmark alone reaches nothing else), so the benchmark must stop it itself.
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

    /// `omx bench rpc` sent SIGTERM alone (not its process group, which ^C reaches) once its
    /// four servers answer: it stops them, removes its directory and exits with 143.
    func testATerminatedRPCBenchmarkLeavesNoServerOrDirectoryBehind() async throws {
        let output = NSTemporaryDirectory() + "omx-bench-rpc-\(UUID().uuidString.prefix(8)).out"
        defer { unlink(output) }
        let bench = try ChildProcess.spawn(siblingExecutable("omx"), ["bench", "rpc", "--pings", "1000000"], stdoutPath: output, stderrPath: output)
        // Its directory, from the command line of its OMX server ("--unix DIR/omx.sock").
        var dir: String?
        let serving = await waitFor(seconds: 30) {
            dir = processIDs(mentioning: "rpc-server").compactMap { _, line -> String? in
                guard let unix = line.range(of: "--unix ") else { return nil }
                let path = line[unix.upperBound...].prefix { $0 != " " }
                return path.hasSuffix("/omx.sock") && path.contains("omx-bench-") ? String(path.dropLast("/omx.sock".count)) : nil
            }.first
            guard let dir else { return false }
            return ["omx", "raw", "uv", "protocol"].allSatisfy { ((try? readTextFile("\(dir)/\($0)-server.out")) ?? "").hasPrefix("ready\n") }
        }
        XCTAssertTrue(serving, "the benchmark started its four servers: \(processes(mentioning: "omx-bench-"))")
        bench.send(SIGTERM)
        let status = await bench.wait(milliseconds: 30_000)
        if status == nil {
            bench.send(SIGKILL)
            bench.wait()
        }
        XCTAssertEqual(status, 128 + SIGTERM, (try? readTextFile(output)) ?? "")
        guard let dir else { return }
        let gone = await waitFor(seconds: 5) { processes(mentioning: dir).isEmpty }
        XCTAssertTrue(gone, "no server of the benchmark is left: \(processes(mentioning: dir))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "its directory \(dir) is gone")
        for left in processIDs(mentioning: dir) { kill(left.pid, SIGKILL) }  // should this test fail
    }

    /// The command lines of the processes whose arguments name `text`.
    private func processes(mentioning text: String) -> [String] {
        processIDs(mentioning: text).map(\.line)
    }

    private func processIDs(mentioning text: String) -> [(pid: Int32, line: String)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
            guard let pid = Int32(name), let bytes = try? readFileBytes("/proc/\(name)/cmdline") else { return nil }
            let line = String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? (pid, line) : nil
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
