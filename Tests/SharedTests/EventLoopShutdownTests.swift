import Foundation
import Glibc
import Logging
import XCTest

@testable import Shared

/// A loop that stops closes every handle still open, whatever its owner was doing with it; the
/// owner's own close, when a callback of the closed handle leads to it, must not close it twice
/// (libuv aborts the process then: a service that got SIGTERM while it was connecting somewhere).
final class EventLoopShutdownTests: XCTestCase {
    func testALoopStoppingWhileAClientIsStillConnectingEndsCleanlyAndFailsTheCall() async throws {
        let listener = try FullListener()
        let full = await listener.becameFull()
        XCTAssertTrue(full, "the listener never queued its occupant:\n\(listener.sockets)")
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: listener.port), logger: Logger(label: "test-client"))
        let call = Task { try await client.call("Ping", [], timeout: .seconds(30)) }
        let connecting = await waitUntil(seconds: 10) { listener.someoneIsConnecting }
        XCTAssertTrue(connecting, "the client's connect never showed up as SYN_SENT:\n\(listener.sockets)")
        // Closing the connecting handle cancels its connect request: the client hears
        // ECANCELED and closes the connection, which the loop had closed already.
        await loop.shutdown()
        do {
            _ = try await call.value
            XCTFail("a call whose connection never came up was answered")
        } catch let error as RPCError {
            XCTAssertEqual(error.status, .unavailable, "\(error)")
            XCTAssertTrue(error.message.contains("127.0.0.1:\(listener.port)"), "\(error)")
        }
    }

    /// A stopped loop's thread leaves nothing behind: a thread nobody joins keeps its stack
    /// (8 MiB by default) mapped for the life of the process; glibc keeps at most 40 MiB of
    /// the stacks of threads that ended, for new ones.
    func testStoppedLoopsLeaveNoThreadStacksBehind() async throws {
        let (loops, stackMiB) = (64, defaultThreadStackBytes() >> 20)
        let (threadsBefore, before) = (loopThreads(), try virtualMemoryKiB())
        for _ in 0..<loops {
            let loop = try EventLoop()
            await loop.shutdown()
        }
        // A loop's thread ends just after `shutdown` returns.
        let ended = await waitUntil { self.loopThreads() <= threadsBefore }
        XCTAssertTrue(ended, "\(loopThreads() - threadsBefore) loop threads still run")
        let grownMiB = (try virtualMemoryKiB() - before) / 1024
        XCTAssertLessThan(grownMiB, loops * stackMiB / 2, "\(loops) loops stopped: their threads' stacks are \(loops * stackMiB) MiB")
    }

    private func virtualMemoryKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmSize:") }
        return Int(line?.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// The threads of this process named omx-loop.
    private func loopThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) == "omx-loop\n" }.count
    }

    /// The stack size of a thread started with default attributes.
    private func defaultThreadStackBytes() -> Int {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var size = 0
        pthread_attr_getstacksize(&attributes, &size)
        return size
    }
}
