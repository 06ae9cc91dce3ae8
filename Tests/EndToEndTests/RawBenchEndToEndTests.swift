import Foundation
import Shared
import XCTest

/// `omx-rawbench`, the baselines `omx bench rpc` measures OMX against: each server (blocking
/// threads, and the bare libuv loop of the event-loop floor) echoes every frame, whole, on TCP
/// and on a Unix socket, and reports the frames it served, so a broken baseline fails here
/// rather than printing a ratio against nothing.
final class RawBenchEndToEndTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "omx-rawbench-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        removeTree(dir)
    }

    func testBlockingServerEchoesEveryFrame() throws {
        try checkServer("serve")
    }

    func testLibuvLoopServerEchoesEveryFrame() throws {
        try checkServer("serve-uv")
    }

    /// Ping-pongs frames larger than one read (70,000 bytes: split across reads) and pipelines
    /// small ones (many per read) through `mode`'s server on both transports.
    private func checkServer(_ mode: String) throws {
        let port = Int.random(in: 41_000...49_000)
        let served = "\(dir)/\(mode).out"
        let server = try ChildProcess.spawn(
            siblingExecutable("omx-rawbench"), [mode, "127.0.0.1", "\(port)", "\(dir)/\(mode).sock"], stdoutPath: served, stderrPath: "\(dir)/\(mode).err")
        defer {
            server.send(SIGKILL)
            server.wait()
        }
        try waitForReady(served, stderr: "\(dir)/\(mode).err", server)
        var expected: [Int] = []
        for transport in [["tcp", "127.0.0.1", "\(port)"], ["unix", "\(dir)/\(mode).sock"]] {
            // Blocking reads and writes, from a bare libuv loop, then blocking reads polling
            // for each answer for 100 us first.
            for (clientMode, polling) in [("pingpong", [String]()), ("pingpong-uv", []), ("pingpong", ["100"])] {
                let client = ([clientMode] + polling).joined(separator: " ")
                let pingPong = LocalCluster.run("omx-rawbench", [clientMode] + transport + ["70000", "200"] + polling)
                XCTAssertEqual(pingPong.status, 0, "\(mode) \(transport[0]) \(client): \(pingPong.stderr)")
                let roundTrips = pingPong.stdout.split(separator: "\n").dropLast()
                XCTAssertEqual(roundTrips.count, 200, "\(mode) \(transport[0]) \(client): one line per measured round trip")
                XCTAssertTrue(roundTrips.allSatisfy { Double($0).map { $0 > 0 } ?? false }, "\(mode) \(transport[0]) \(client): \(roundTrips.prefix(3))")
                expected.append(220)  // and a tenth as many to warm up
            }

            let pipeline = LocalCluster.run("omx-rawbench", ["pipeline"] + transport + ["64", "0.2", "128"])
            XCTAssertEqual(pipeline.status, 0, "\(mode) \(transport[0]) pipeline: \(pipeline.stderr)")
            let calls = pipeline.stdout.split(separator: "\n").first.flatMap { $0.split(separator: " ").first }.flatMap { Int($0) }
            XCTAssertGreaterThan(calls ?? 0, 128, "\(mode) \(transport[0]) pipeline printed: \(pipeline.stdout)")
            expected.append(calls ?? -1)
        }
        // Every client got all its answers (it waits for each); the server reports each
        // connection once the client is gone.
        let deadline = monotonicNs() + 5_000_000_000
        var reports = servedFrames(served)
        while reports.count < expected.count && monotonicNs() < deadline {
            usleep(20_000)
            reports = servedFrames(served)
        }
        XCTAssertEqual(reports, expected, "\(mode): frames served per connection (\(served))")
    }
}
