import Glibc

/// The two ends of a connected TCP socket, as "IPv4:port": what a signature is bound to (the
/// receiver's end, proto/README.md "Authentication"), so that an envelope signed for one
/// service of one node is refused by every other.
struct SocketEnds: Sendable {
    /// This side's address and port.
    let local: String
    /// The other side's address and port.
    let peer: String

    /// The other side's address alone ("" when unknown).
    var peerIP: String { peer.lastIndex(of: ":").map { String(peer[..<$0]) } ?? "" }

    /// Both ends empty: a Unix socket's, whose envelopes are not signed.
    static let unsigned = SocketEnds(local: "", peer: "")

    init(local: String, peer: String) {
        self.local = local
        self.peer = peer
    }

    /// The ends of connected socket `fd`, or `unsigned` when it has no IPv4 ends (not TCP,
    /// or no longer connected).
    init(fd: Int32) {
        self = SocketEnds.text(of: fd, getsockname).flatMap { local in SocketEnds.text(of: fd, getpeername).map { SocketEnds(local: local, peer: $0) } } ?? .unsigned
    }

    private static func text(of fd: Int32, _ name: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> String? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { name(fd, $0, &length) } }
        guard rc == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        var ip = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &address.sin_addr, &ip, socklen_t(ip.count)) != nil else { return nil }
        return "\(String(cString: ip)):\(UInt16(bigEndian: address.sin_port))"
    }
}
