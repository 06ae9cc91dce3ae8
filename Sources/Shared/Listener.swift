import CLibUV
import Glibc

/// Where a server listens or a client connects.
public enum RPCEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// An IPv4 address and a TCP port.
    case tcp(host: String, port: Int)
    /// A Unix-socket path.
    case unix(path: String)

    public var description: String {
        switch self {
        case let .tcp(host, port): return "\(host):\(port)"
        case let .unix(path): return "unix:\(path)"
        }
    }
}

/// A listening TCP or Unix socket that hands each accepted stream to `onConnection`.
/// Loop thread only; released in libuv's close callback.
final class Listener {
    let loop: EventLoop
    let endpoint: RPCEndpoint
    /// The bound TCP port (useful when asked to listen on port 0).
    private(set) var boundPort = 0
    var onConnection: ((Connection) -> Void)?
    var onAcceptError: ((UVError) -> Void)?
    private let handle: UnsafeMutablePointer<uv_stream_t>
    private let maxFrameSize: Int
    private var isClosed = false
    private var ownsSocketFile = false

    /// Binds and listens on `endpoint`.
    /// - Throws: `UVError` naming the endpoint, or `ConfigError` when a Unix socket path is
    ///   already served by a running process.
    init(loop: EventLoop, endpoint: RPCEndpoint, maxFrameSize: Int) throws {
        self.loop = loop
        self.endpoint = endpoint
        self.maxFrameSize = maxFrameSize
        let size = max(MemoryLayout<uv_tcp_t>.size, MemoryLayout<uv_pipe_t>.size)
        handle = malloc(size)!.bindMemory(to: uv_stream_t.self, capacity: 1)
        do {
            switch endpoint {
            case let .tcp(host, port):
                try uvCheck(uv_tcp_init(loop.uvLoop, handle.reinterpreted(as: uv_tcp_t.self)), "tcp init", peer: endpoint.description)
                handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
                try uvCheck(CLibUV_tcp_bind4(handle.reinterpreted(as: uv_tcp_t.self), host, Int32(port)), "bind", peer: endpoint.description)
            case let .unix(path):
                try uvCheck(uv_pipe_init(loop.uvLoop, handle.reinterpreted(as: uv_pipe_t.self), 0), "pipe init", peer: path)
                handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
                try Listener.removeStaleSocket(path)
                try uvCheck(uv_pipe_bind(handle.reinterpreted(as: uv_pipe_t.self), path), "bind", peer: path)
                ownsSocketFile = true
            }
            try uvCheck(uv_listen(handle, 511, { server, status in
                let listener = Unmanaged<Listener>.fromOpaque(server!.pointee.data!).takeUnretainedValue()
                listener.accept(status: status)
            }), "listen", peer: endpoint.description)
            if case .unix = endpoint {
                try uvCheck(uv_pipe_chmod(handle.reinterpreted(as: uv_pipe_t.self), Int32(UV_READABLE.rawValue | UV_WRITABLE.rawValue)), "chmod", peer: endpoint.description)
            }
            if case .tcp = endpoint {
                var ip = [CChar](repeating: 0, count: 64)
                var port: Int32 = 0
                _ = CLibUV_tcp_local_ip(handle.reinterpreted(as: uv_tcp_t.self), &ip, ip.count, &port)
                boundPort = Int(port)
            }
        } catch {
            close()
            throw error
        }
    }

    /// A socket file left by a process that is gone is removed; one that answers is an error.
    private static func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConfigError("\(path): exists and is not a socket; refusing to replace it")
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(probe) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        if connected { throw ConfigError("\(path): a running service already listens here") }
        unlink(path)
    }

    private func accept(status: Int32) {
        guard status == 0 else {
            onAcceptError?(UVError(code: status, operation: "accept", peer: endpoint.description))
            return
        }
        let transport: Connection.Transport
        if case .tcp = endpoint { transport = .tcp } else { transport = .unix }
        guard let connection = try? Connection(loop: loop, transport: transport, peer: "?", maxFrameSize: maxFrameSize)
        else { return }
        let rc = uv_accept(handle, connection.stream)
        guard rc == 0 else {
            connection.close(nil)
            onAcceptError?(UVError(code: rc, operation: "accept", peer: endpoint.description))
            return
        }
        connection.readPeer()
        connection.peer = Listener.describePeer(of: connection, endpoint: endpoint)
        onConnection?(connection)
    }

    /// "127.0.0.2:7701"-style for TCP peers; the endpoint plus the caller's pid and uid for Unix peers.
    private static func describePeer(of connection: Connection, endpoint: RPCEndpoint) -> String {
        switch connection.transport {
        case .tcp:
            return connection.ends.peerIP.isEmpty ? "unknown TCP peer" : connection.ends.peerIP
        case .unix:
            if let credentials = connection.unixCredentials {
                return "\(endpoint) (pid \(credentials.pid), uid \(credentials.uid))"
            }
            return endpoint.description
        }
    }

    /// Stops listening; a Unix socket file is removed.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if case let .unix(path) = endpoint, ownsSocketFile { unlink(path) }
        let handlePointer = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
        if handlePointer.pointee.data == nil {
            free(handle)
            return
        }
        // A stopping loop closed it already (see `EventLoop.shutdown`).
        guard uv_is_closing(handlePointer) == 0 else { return }
        uv_close(handlePointer) { handle in
            Unmanaged<Listener>.fromOpaque(handle!.pointee.data!).release()
            free(handle)
        }
    }
}

/// Who is at the other end of a Unix socket, as the kernel reports it.
struct PeerCredentials {
    let pid: Int32
    let uid: UInt32
    let gid: UInt32
    /// The supplementary groups as they were when the peer connected; none where the kernel
    /// cannot tell them (before Linux 4.13: the caller then acts with fewer rights).
    let groups: [UInt32]

    /// The credentials of the peer of `pipe`, or nil when the kernel does not say.
    init?(pipe: UnsafeMutablePointer<uv_pipe_t>) {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard CLibUV_pipe_peer_credentials(pipe, &pid, &uid, &gid) == 0 else { return nil }
        // Most users have a few groups: ask for 32, then for as many as the kernel says.
        var groups = [gid_t](repeating: 0, count: 32)
        var needed: Int32 = 0
        var count = CLibUV_pipe_peer_groups(pipe, &groups, Int32(groups.count), &needed)
        if count == -ERANGE {
            groups = [gid_t](repeating: 0, count: Int(needed))
            count = CLibUV_pipe_peer_groups(pipe, &groups, Int32(groups.count), &needed)
        }
        (self.pid, self.uid, self.gid, self.groups) = (pid, uid, gid, Array(groups.prefix(Int(max(count, 0)))))
    }
}
