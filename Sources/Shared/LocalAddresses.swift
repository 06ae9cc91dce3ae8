import CLibUV
import Glibc

/// True when `address` (IPv4) belongs to this host: a socket can be bound to it. On Linux the
/// whole of 127.0.0.0/8 is local, which is what lets a local cluster bind node k to 127.0.0.k.
public func isLocalIPv4Address(_ address: String) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var socketAddress = sockaddr_in()
    socketAddress.sin_family = sa_family_t(AF_INET)
    guard inet_pton(AF_INET, address, &socketAddress.sin_addr) == 1 else { return false }
    return withUnsafePointer(to: &socketAddress) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

/// The IPv4 addresses a host name resolves to (an IPv4 address resolves to itself).
public func resolveIPv4(_ host: String) -> [String] {
    if let address = IPv4Address(host) { return [address.description] }
    var hints = addrinfo()
    hints.ai_family = AF_INET
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
    defer { freeaddrinfo(list) }
    var result: [String] = []
    var cursor = list
    while let entry = cursor {
        if let address = entry.pointee.ai_addr {
            var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ipv4 in
                var raw = ipv4.pointee.sin_addr
                _ = inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
            }
            let value = String(cString: text)
            if !result.contains(value) { result.append(value) }
        }
        cursor = entry.pointee.ai_next
    }
    return result
}

extension ClusterMap {
    /// Every address of every node, host names resolved to IPv4: the peers a service accepts.
    public func resolvedAddresses() -> Set<String> {
        Set(nodes.flatMap { $0.addresses.flatMap(resolveIPv4) })
    }

    /// The nodes that have an address of this host.
    public func localNodes() -> [MapNode] {
        nodes.filter { node in node.addresses.flatMap(resolveIPv4).contains(where: isLocalIPv4Address) }
    }

    /// The node whose addresses include one of this host's, when exactly one does.
    /// - Throws: `ConfigError` when none or several do (then `--node-id` must say).
    public func localNode() throws -> MapNode {
        let matches = localNodes()
        guard matches.count == 1 else {
            let found = matches.isEmpty
                ? "no node of \(source) has an address of this host"
                : "nodes \(matches.map { String($0.id) }.joined(separator: ", ")) of \(source) all have addresses of this host"
            throw ConfigError("\(found); pass --node-id")
        }
        return matches[0]
    }
}
