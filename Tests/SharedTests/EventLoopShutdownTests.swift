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

    /// A stopped loop's thread leaves nothing behind: a thread nobody joins keeps its 8 MiB
    /// stack mapped for the life of the process (glibc keeps at most 40 MiB of freed stacks).
    func testStoppedLoopsLeaveNoThreadStacksBehind() async throws {
        let before = try virtualMemoryKiB()
        for _ in 0..<32 {
            let loop = try EventLoop()
            await loop.shutdown()
        }
        let grownMiB = (try virtualMemoryKiB() - before) / 1024
        XCTAssertLessThan(grownMiB, 128, "32 loops stopped: their threads' stacks are 256 MiB")
    }

    private func virtualMemoryKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmSize:") }
        return Int(line?.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
