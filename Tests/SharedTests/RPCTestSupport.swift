import Foundation
import Logging
import Synchronization
import XCTest

@testable import Shared

/// A server and a client on separate event loops, over real sockets.
final class RPCFixture {
    let serverLoop: EventLoop
    let clientLoop: EventLoop
    let server: RPCServer
    let key: ClusterKey
    let socketPath: String
    private(set) var port = 0
    private var clients: [RPCClient] = []

    /// - Parameter configure: changes the server's settings before it starts.
    init(
        maxFrameSize: Int = Frame.defaultMaxSize, allowedAddresses: Set<String>? = ["127.0.0.1"], key: ClusterKey = .generate(),
        serverLogger: Logger = Logger(label: "test-server"), configure: (inout RPCServer.Configuration) -> Void = { _ in }
    ) throws {
        self.key = key
        serverLoop = try EventLoop()
        clientLoop = try EventLoop()
        socketPath = NSTemporaryDirectory() + "omx-test-\(UUID().uuidString.prefix(8)).sock"
        var configuration = RPCServer.Configuration(
            name: "test server", maxFrameSize: maxFrameSize, authenticator: Authenticator(key: key, nodeID: 1), allowedAddresses: allowedAddresses)
        configure(&configuration)
        server = RPCServer(loop: serverLoop, configuration: configuration, logger: serverLogger)
        server.register("Echo") { request in request.body }
    }

    /// The server's TCP end, which the signatures of requests to it name.
    var service: String { "127.0.0.1:\(port)" }

    /// Listens on TCP (on `port`, or on a free one) and on the Unix socket.
    func listen(port wanted: Int = 0) async throws {
        port = try await server.listen(on: .tcp(host: "127.0.0.1", port: wanted))
        try await server.listen(on: .unix(path: socketPath))
    }

    func tcpClient(key: ClusterKey? = nil, signed: Bool = true, bindAddress: String? = nil) -> RPCClient {
        let authenticator = signed ? Authenticator(key: key ?? self.key, nodeID: 2) : nil
        let client = RPCClient(
            loop: clientLoop, endpoint: .tcp(host: "127.0.0.1", port: port),
            configuration: .init(authenticator: authenticator, bindAddress: bindAddress), logger: Logger(label: "test-client"))
        clients.append(client)
        return client
    }

    func unixClient() -> RPCClient {
        let client = RPCClient(loop: clientLoop, endpoint: .unix(path: socketPath), logger: Logger(label: "test-client"))
        clients.append(client)
        return client
    }

    func close() async {
        for client in clients { await client.close() }
        await server.shutdown(grace: .seconds(1))
        await serverLoop.shutdown()
        await clientLoop.shutdown()
    }
}

/// Keeps the lines logged through its loggers, for tests to read.
final class CapturedLogs: Sendable {
    private let lines = Mutex<[String]>([])

    /// A logger whose lines (level and message) go here.
    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(logs: self) }
        logger.logLevel = .debug
        return logger
    }

    /// The lines logged so far.
    var all: [String] { lines.withLock { $0 } }

    private struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel = Logger.Level.debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            logs.lines.withLock { $0.append("\(event.level): \(event.message)") }
        }
    }
}

/// A TCP socket listening on `host` at `port` (0: one the kernel chose), and that port.
/// - Parameter backlog: how many connections the kernel holds for it before `accept`, less one.
func listeningSocket(host: String = "127.0.0.1", port: Int = 0, backlog: Int32 = 8) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &address.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound, listen(fd, backlog) == 0 else {
        close(fd)
        throw POSIXError(.EADDRNOTAVAIL)
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A blocking socket for sending hand-made bytes to a server.
final class RawSocket {
    let fd: Int32

    init(port: Int, host: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next connection `listener` accepts (a peer played by hand).
    init(acceptedBy listener: Int32) {
        fd = accept(listener, nil, nil)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    /// This socket's end, which the signatures of answers to it name.
    var local: String { SocketEnds(fd: fd).local }

    /// Sends the frames `frame(1)`, `frame(2)` ... without reading anything, until a send makes
    /// no progress for a second (the server stopped reading) or `limit` bytes went out.
    func sendWithoutReading(limit: Int, _ frame: (Int) -> OutgoingBytes) -> (frames: Int, bytes: Int) {
        var patience = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &patience, socklen_t(MemoryLayout<timeval>.size))
        var sent = (frames: 0, bytes: 0)
        while sent.bytes < limit {
            let next = frame(sent.frames + 1)
            var offset = 0
            while offset < next.count {
                let count = Glibc.send(fd, next.base + offset, next.count - offset, Int32(MSG_NOSIGNAL))
                if count <= 0 { return sent }
                offset += count
                sent.bytes += count
            }
            sent.frames += 1
        }
        return sent
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads one frame and parses it; nil at end of stream or after the timeout.
    func readEnvelope() -> Envelope? {
        readPayload().flatMap { try? Envelope(serialized: $0) }
    }

    /// Reads one frame's payload; nil at end of stream or after the timeout.
    func readPayload() -> [UInt8]? {
        guard let header = read(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return read(length)
    }

    /// True when the server closed the connection (read returns 0).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    /// Reads `count` bytes; nil at end of stream or after the timeout.
    func read(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n <= 0 { return nil }
            done += n
        }
        return out
    }
}

/// Asserts that `body` throws an `RPCError` with `status` whose message contains `text`.
func assertRPCError<T>(
    _ status: StatusCode, containing text: String, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected \(status) containing '\(text)'", file: file, line: line)
    } catch let error as RPCError {
        XCTAssertEqual(error.status, status, "\(error)", file: file, line: line)
        XCTAssertTrue(error.message.contains(text), "'\(error.message)' lacks '\(text)'", file: file, line: line)
    } catch {
        XCTFail("unexpected \(error)", file: file, line: line)
    }
}

/// Holds its callers until it is opened.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func passed() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if !state.open { state.waiting.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiting = state.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }
}

/// Asks `condition` every 10 ms until it holds or `seconds` pass; says whether it held.
func waitUntil(seconds: Double = 5, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return await condition()
}

extension Envelope {
    /// `Envelope.open`, copying the envelope out (without `auth`), with the node id that signed it.
    static func received(
        _ payload: UnsafeRawBufferPointer, verifiedBy authenticator: Authenticator?, at receiver: String, session: SessionKeys? = nil,
        refusalsUnsigned: Bool, nowMs: UInt64 = wallClockMs()
    ) throws -> (envelope: Envelope, signer: UInt32?) {
        try open(payload, verifiedBy: authenticator, at: receiver, session: session, refusalsUnsigned: refusalsUnsigned, nowMs: nowMs) {
            (Envelope($0), $1)
        }
    }
}
