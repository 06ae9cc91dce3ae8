import Foundation
import Glibc
import Logging
import XCTest

@testable import Shared

/// A loop that stops closes every handle still open, whatever its owner was doing with it; the
/// owner's own close, when a callback of the closed handle leads to it, must not close it twice
/// (libuv aborts the process then: a service that got SIGTERM while it was connecting somewhere).
final class EventLoopShutdownTests: XCTestCase {
    /// A TCP listener that never accepts and whose accept queue is already full: the kernel drops
    /// the SYN of every further connect, which stays in progress.
    private final class FullListener {
        let fd: Int32
        let port: Int
        private var occupant: RawSocket?

        init() throws {
            (fd, port) = try listeningSocket(backlog: 0)
            // A backlog of 0 holds one connection not yet accepted: once the kernel queued it,
            // every further SYN is dropped.
            occupant = try RawSocket(port: port)
            let deadline = Date().addingTimeInterval(10)
            while socketLines(state: "0A", localAddress: address).first?[4] != "00000000:00000001" && Date() < deadline { usleep(1_000) }
        }

        deinit { Glibc.close(fd) }

        /// This listener's address as /proc/net/tcp writes it.
        private var address: String { String(format: "0100007F:%04X", port) }

        /// Whether some socket is sending SYNs to this listener (state SYN_SENT).
        var someoneIsConnecting: Bool { !socketLines(state: "02", remoteAddress: address).isEmpty }

        /// The fields of the lines of /proc/net/tcp in `state` with these ends.
        private func socketLines(state: String, localAddress: String? = nil, remoteAddress: String? = nil) -> [[Substring]] {
            let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
            return table.split(separator: "\n").map { $0.split(separator: " ") }.filter { fields in
                fields.count > 4 && fields[3] == state && localAddress.map { fields[1] == $0 } ?? true
                    && remoteAddress.map { fields[2] == $0 } ?? true
            }
        }
    }

    func testALoopStoppingWhileAClientIsStillConnectingEndsCleanlyAndFailsTheCall() async throws {
        let listener = try FullListener()
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: listener.port), logger: Logger(label: "test-client"))
        let call = Task { try await client.call("Ping", [], timeout: .seconds(30)) }
        let deadline = Date().addingTimeInterval(10)
        while !listener.someoneIsConnecting && Date() < deadline { usleep(1_000) }
        XCTAssertTrue(listener.someoneIsConnecting, "the client's connect to port \(listener.port) never showed up as SYN_SENT")
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
}
