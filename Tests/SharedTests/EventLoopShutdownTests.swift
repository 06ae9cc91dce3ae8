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
        }

        deinit { Glibc.close(fd) }

        /// This listener's address as /proc/net/tcp writes it.
        private var address: String { String(format: "0100007F:%04X", port) }

        /// Whether the kernel queued the occupant (it answers no SYN from then on).
        var isFull: Bool { socketLines(state: "0A", localAddress: address).first?[4] == "00000000:00000001" }

        /// Whether some socket is sending SYNs to this listener (state SYN_SENT).
        var someoneIsConnecting: Bool { !socketLines(state: "02", remoteAddress: address).isEmpty }

        /// The lines of /proc/net/tcp of the sockets at either end of this listener, for a failure.
        var sockets: String {
            socketLines(localAddress: address).map { $0.joined(separator: " ") }.joined(separator: "\n") + "\n"
                + socketLines(remoteAddress: address).map { $0.joined(separator: " ") }.joined(separator: "\n")
        }

        /// The fields of the lines of /proc/net/tcp in `state` with these ends.
        private func socketLines(state: String? = nil, localAddress: String? = nil, remoteAddress: String? = nil) -> [[Substring]] {
            let table = (try? readTextFile("/proc/net/tcp")) ?? ""
            return table.split(separator: "\n").map { $0.split(separator: " ") }.filter { fields in
                fields.count > 4 && state.map { fields[3] == $0 } ?? true && localAddress.map { fields[1] == $0 } ?? true
                    && remoteAddress.map { fields[2] == $0 } ?? true
            }
        }
    }

    func testALoopStoppingWhileAClientIsStillConnectingEndsCleanlyAndFailsTheCall() async throws {
        let listener = try FullListener()
        // Waits without holding a thread of the cooperative pool, which the call needs.
        let deadline = Date().addingTimeInterval(10)
        while !listener.isFull && Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
        XCTAssertTrue(listener.isFull, "the listener never queued its occupant:\n\(listener.sockets)")
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .tcp(host: "127.0.0.1", port: listener.port), logger: Logger(label: "test-client"))
        let call = Task { try await client.call("Ping", [], timeout: .seconds(30)) }
        while !listener.someoneIsConnecting && Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
        XCTAssertTrue(listener.someoneIsConnecting, "the client's connect never showed up as SYN_SENT:\n\(listener.sockets)")
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
