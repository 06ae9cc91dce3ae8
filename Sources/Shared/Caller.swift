/// Who made a call, as the transport established it.
public enum Caller: Sendable, Equatable, CustomStringConvertible {
    /// A TCP peer whose address is in the map and whose envelope carried a valid MAC.
    case remote(address: String, nodeID: UInt32)
    /// A local process on the Unix socket, identified by the kernel (SO_PEERCRED).
    case local(pid: Int32, uid: UInt32, gid: UInt32)

    public var description: String {
        switch self {
        case let .remote(address, nodeID): return nodeID == 0 ? "\(address)" : "node \(nodeID) (\(address))"
        case let .local(pid, uid, _): return "local pid \(pid) uid \(uid)"
        }
    }
}

/// One incoming call as a handler sees it.
public struct RPCRequest: Sendable {
    public let method: String
    public let body: [UInt8]
    public let caller: Caller
    /// How long the caller waits, in milliseconds (0 = no deadline).
    public let deadlineMs: UInt32
}
