import Foundation
import Glibc

@testable import Shared

/// A TCP listener that never accepts and whose accept queue is already full: the kernel drops
/// the SYN of every further connect, which stays in progress (a host that does not answer).
final class FullListener {
    let fd: Int32
    let port: Int
    private let host: String
    private var occupant: RawSocket?

    /// Listens on `host` at `port` (0: one the kernel chooses).
    init(host: String = "127.0.0.1", port: Int = 0) throws {
        self.host = host
        (fd, self.port) = try listeningSocket(host: host, port: port, backlog: 0)
        // A backlog of 0 holds one connection not yet accepted: once the kernel queued it,
        // every further SYN is dropped.
        occupant = try RawSocket(port: self.port, host: host)
    }

    deinit { Glibc.close(fd) }

    /// Waits (without holding a thread of the cooperative pool) until the kernel queued the
    /// occupant; says whether it did within `seconds`.
    func becameFull(seconds: Double = 10) async -> Bool {
        await waitUntil(seconds: seconds) { isFull }
    }

    /// This listener's address as /proc/net/tcp writes it.
    private var address: String {
        var ipv4 = in_addr()
        inet_pton(AF_INET, host, &ipv4)
        return String(format: "%08X:%04X", ipv4.s_addr, port)
    }

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
