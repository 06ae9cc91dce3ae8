/// Who made a call, as the transport established it.
public enum Caller: Sendable, Equatable, CustomStringConvertible {
    /// A TCP peer whose address is in the map and whose envelope carried a valid MAC.
    case remote(address: String, nodeID: UInt32)
    /// A local process on the Unix socket, identified by the kernel (SO_PEERCRED), with the
    /// supplementary groups it had when it connected (SO_PEERGROUPS).
    case local(pid: Int32, uid: UInt32, gid: UInt32, groups: [UInt32])

    /// A user or a tool (a local process, or a TCP caller signing as node 0), not another
    /// node's service: calls from clients about a job are forwarded to the job's home.
    public var isClient: Bool {
        switch self {
        case .local: return true
        case let .remote(_, nodeID): return nodeID == 0
        }
    }

    public var description: String {
        switch self {
        case let .remote(address, nodeID): return nodeID == 0 ? "\(address)" : "node \(nodeID) (\(address))"
        case let .local(pid, uid, _, _): return "local pid \(pid) uid \(uid)"
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
