import CLibUV

/// A failed libuv operation: the operation, the peer it concerned (if any) and libuv's error.
public struct UVError: Error, CustomStringConvertible, Sendable {
    /// libuv's negative error code, e.g. `UV_ECONNREFUSED`.
    public let code: Int32
    /// What was being done, e.g. `"connect"`.
    public let operation: String
    /// The address or path the operation concerned, if any.
    public let peer: String?

    public init(code: Int32, operation: String, peer: String? = nil) {
        self.code = code
        self.operation = operation
        self.peer = peer
    }

    /// libuv's short name of the error, e.g. `ECONNREFUSED`.
    public var name: String { String(cString: uv_err_name(code)) }

    public var description: String {
        let target = peer.map { " \($0)" } ?? ""
        return "\(operation)\(target): \(name) (\(String(cString: uv_strerror(code))))"
    }

    /// True when this is libuv's code `errno` (pass e.g. `UV_EOF`).
    public func `is`(_ errno: uv_errno_t) -> Bool { code == errno.rawValue }
}

/// Throws a `UVError` naming `operation` when a libuv call returned a negative code.
@inline(__always)
func uvCheck(_ rc: Int32, _ operation: String, peer: String? = nil) throws {
    if rc < 0 { throw UVError(code: rc, operation: operation, peer: peer) }
}
