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
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
            }
            guard bound, listen(fd, 0) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
            port = Int(UInt16(bigEndian: address.sin_port))
            // A backlog of 0 holds one connection not yet accepted.
            occupant = try RawSocket(port: port)
        }

        deinit { Glibc.close(fd) }

        /// Whether some socket is sending SYNs to this listener (state SYN_SENT in /proc/net/tcp).
        var someoneIsConnecting: Bool {
            let remote = String(format: "0100007F:%04X", port)
            let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
            return table.split(separator: "\n").contains { line in
                let fields = line.split(separator: " ")
                return fields.count > 3 && fields[2] == remote && fields[3] == "02"
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
