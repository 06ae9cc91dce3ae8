import Glibc
import Synchronization

/// Calls one TCP service from threads that may block (FUSE workers, the write-behind queue).
/// Each call takes a connection of its own from a small pool, and the calling thread writes
/// the request and reads the answer itself: no hop to an event loop and back, which on a
/// loaded machine costs more than the call. The frames, signatures and errors are those of
/// `RPCClient`, and each new connection agrees on a session first, as `RPCClient`'s do; one
/// call is in flight per connection.
///
/// When connecting fails, calls fail fast with UNAVAILABLE until the next attempt is due; the
/// wait doubles after each failure up to `maxBackoffMs` and resets after a success.
public final class BlockingRPCClient: Sendable {
    public let host: String
    public let port: Int
    private let authenticator: Authenticator?
    private let bindAddress: String?
    private let connectTimeoutMs: Int32
    private let initialBackoffMs: UInt64
    private let maxBackoffMs: UInt64
    private let maxFrameSize: Int
    private let answerPollingNs: UInt64
    private let idle = Mutex<[Link]>([])
    private let nextCallID = Atomic<UInt64>(1)
    private let refusal = Mutex<(untilNs: UInt64, backoffMs: UInt64, reason: String)>((0, 0, ""))

    /// - Parameters:
    ///   - authenticator: signs requests and checks answers (every OMX service on TCP needs it).
    ///   - bindAddress: the local IPv4 address calls come from (a node's map address).
    ///   - answerPolling: how long the calling thread polls for an answer before it sleeps in
    ///     recv (`EventLoop+AnswerPolling.swift` says why); omx.conf's `answer_poll_us`.
    public init(
        host: String, port: Int, authenticator: Authenticator?, bindAddress: String?, connectTimeoutMs: Int32 = 1_000,
        initialBackoffMs: UInt64 = 20, maxBackoffMs: UInt64 = 500, maxFrameSize: Int = Frame.defaultMaxSize,
        answerPolling: Duration = .microseconds(OMXConfig.active.answerPollMicroseconds)
    ) {
        self.host = host
        self.port = port
        self.authenticator = authenticator
        self.bindAddress = bindAddress
        self.connectTimeoutMs = connectTimeoutMs
        self.initialBackoffMs = initialBackoffMs
        self.maxBackoffMs = maxBackoffMs
        self.maxFrameSize = maxFrameSize
        answerPollingNs = answerPolling.nanoseconds
        refusal.withLock { $0.backoffMs = initialBackoffMs }
    }

    deinit {
        for link in idle.withLock({ $0 }) { Glibc.close(link.fd) }
    }

    /// The idle connections, and how many of them agreed on a session (for tests and diagnostics).
    var idleConnections: (all: Int, withSession: Int) {
        idle.withLock { links in (links.count, links.filter { $0.session != nil }.count) }
    }

    /// A connection, with the receive timeout set on it (a blocking recv waits at most that)
    /// and the session keys agreed on it.
    private struct Link {
        let fd: Int32
        /// Both ends, which signatures name.
        let ends: SocketEnds
        var waitTimeoutMs: UInt64 = 0
        var session: SessionKeys?
        /// Where each answer is first read, allocated once with the connection.
        let firstRead = FirstReadArea()

        /// Makes a blocking send or recv on this connection wait at most `timeoutMs` (a peer
        /// that stopped reading must not hold a thread forever).
        mutating func limitWaits(to timeoutMs: UInt64) {
            guard waitTimeoutMs != timeoutMs else { return }
            var limit = timeval(tv_sec: Int(timeoutMs / 1_000), tv_usec: Int(timeoutMs % 1_000) * 1_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            waitTimeoutMs = timeoutMs
        }

        /// Shortens the waits to the time left until `deadlineNs`, when that is less.
        mutating func limitWaits(until deadlineNs: UInt64, now: UInt64) {
            let leftMs = millisecondsLeft(until: deadlineNs, from: now)
            if leftMs < waitTimeoutMs { limitWaits(to: leftMs) }
        }
    }

    private var peer: String { "\(host):\(port)" }

    /// Calls `method` with `body` and returns the answer's body.
    /// - Throws: `RPCError`: the callee's status, or UNAVAILABLE (cannot connect, with
    ///   `neverSent`; connection lost), DEADLINE_EXCEEDED (no answer within `timeout`; the
    ///   connection is dropped).
    public func call(_ method: String, _ body: [UInt8], timeout: Duration = .seconds(5)) throws -> [UInt8] {
        let timeoutMs = max(timeout.milliseconds, 1)
        let deadlineNs = monotonicNs(afterMs: timeoutMs)
        let callID = nextCallID.wrappingAdd(1, ordering: .relaxed).oldValue
        let request = Envelope(callID: callID, kind: .request, method: method, body: body, deadlineMs: UInt32(clamping: timeoutMs))
        var link: Link
        do {
            link = try connection(for: method, withinMs: timeoutMs)
        } catch let error as RPCError {
            throw RPCError(error.status, error.message, neverSent: true)
        }
        link.limitWaits(to: timeoutMs)
        do {
            try send(request.frame(signedBy: authenticator, to: link.ends.peer, session: link.session), on: &link, method: method, deadlineNs: deadlineNs, timeoutMs: timeoutMs)
            let answer = try receive(callID, on: &link, method: method, deadlineNs: deadlineNs, timeoutMs: timeoutMs)
            idle.withLock { $0.append(link) }
            return try answer.get()
        } catch let error as ConnectionFailure {
            Glibc.close(link.fd)
            throw error.rpcError
        }
    }

    /// A failure that ends the connection it happened on.
    private struct ConnectionFailure: Error {
        let rpcError: RPCError
    }

    /// An idle connection the peer has not closed meanwhile, or a new one, made and agreed on
    /// within `withinMs` (or the connect timeout, if shorter).
    private func connection(for method: String, withinMs: UInt64) throws -> Link {
        while let link = idle.withLock({ $0.popLast() }) {
            // Nothing may be readable on an idle connection: an end of file (the service
            // restarted) or stray bytes mean it is no use.
            var poller = pollfd(fd: link.fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 0) == 0 { return link }
            Glibc.close(link.fd)
        }
        let (untilNs, _, reason) = refusal.withLock { $0 }
        let now = monotonicNs()
        if now < untilNs {
            throw RPCError(.unavailable, "\(method) to \(peer): \(reason); next attempt in \((untilNs - now) / 1_000_000) ms")
        }
        do {
            let waitMs = Int32(clamping: min(UInt64(max(connectTimeoutMs, 1)), withinMs))
            let fd = try connect(withinMs: waitMs)
            var link = Link(fd: fd, ends: SocketEnds(fd: fd))
            if let authenticator {
                do {
                    link.session = try agreeSession(on: &link, authenticator, withinMs: UInt64(waitMs))
                } catch let failure as ConnectionFailure {
                    // Refused (a service at its connection limit) or lost: not again at once.
                    Glibc.close(link.fd)
                    backOff(failure.rpcError.message)
                    throw failure.rpcError
                }
            }
            // The backoff starts afresh only once a connection is good for calls.
            refusal.withLock { $0 = (0, initialBackoffMs, "") }
            return link
        } catch let reason as ConnectError {
            backOff(reason.message)
            throw RPCError(.unavailable, "\(method) to \(peer): \(reason.message)")
        }
    }

    /// Makes new connections wait for the backoff, which doubles up to `maxBackoffMs`.
    private func backOff(_ reason: String) {
        refusal.withLock { state in
            state = (monotonicNs() + state.backoffMs * 1_000_000, min(state.backoffMs * 2, maxBackoffMs), reason)
        }
    }

    /// Agrees on session keys on a new connection (proto/README.md, "Sessions"); nil when the
    /// service does not agree (another implementation): calls go on with the cluster key.
    /// - Throws: `ConnectionFailure` when the connection fails meanwhile.
    private func agreeSession(on link: inout Link, _ authenticator: Authenticator, withinMs timeoutMs: UInt64) throws -> SessionKeys? {
        let offer = SessionOffer()
        let callID = nextCallID.wrappingAdd(1, ordering: .relaxed).oldValue
        let request = Envelope(callID: callID, kind: .request, method: SessionOffer.method, body: offer.request, deadlineMs: UInt32(timeoutMs))
        let deadlineNs = monotonicNs(afterMs: timeoutMs)
        link.limitWaits(to: timeoutMs)
        try send(request.frame(signedBy: authenticator, to: link.ends.peer), on: &link, method: SessionOffer.method, deadlineNs: deadlineNs, timeoutMs: timeoutMs)
        let answer = try receive(callID, on: &link, method: SessionOffer.method, deadlineNs: deadlineNs, timeoutMs: timeoutMs)
        guard case let .success(body) = answer else { return nil }
        return try? offer.keys(from: body, authenticator: authenticator)
    }

    private struct ConnectError: Error {
        let message: String
    }

    /// A TCP socket connected within `withinMs` (blocking, no Nagle delay), bound to
    /// `bindAddress` when given.
    private func connect(withinMs: Int32) throws -> Int32 {
        func failure(_ what: String, _ code: Int32 = errno) -> ConnectError {
            ConnectError(message: "\(what) \(peer): \(String(cString: strerror(code)))")
        }
        guard let target = ipv4SocketAddress(host, port: port) else { throw ConnectError(message: "\(host) is no IPv4 address") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw failure("socket for") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        do {
            if let bindAddress {
                guard let source = ipv4SocketAddress(bindAddress, port: 0) else { throw ConnectError(message: "bind address \(bindAddress) is no IPv4 address") }
                guard withSocketAddress(source, { bind(fd, $0, $1) }) == 0 else { throw failure("bind to \(bindAddress) for") }
            }
            if withSocketAddress(target, { Glibc.connect(fd, $0, $1) }) != 0 {
                guard errno == EINPROGRESS else { throw failure("connect") }
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&poller, 1, withinMs) == 1 else { throw ConnectError(message: "connect \(peer): timed out after \(withinMs) ms") }
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                guard code == 0 else { throw failure("connect", code) }
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
        // Blocking from here on: the calling thread waits in write and poll.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// Writes `frame` on `link` by the call's deadline (the send timeout shrinks to the time
    /// left: a peer that reads a little at a time must not hold the thread past it).
    private func send(_ frame: OutgoingBytes, on link: inout Link, method: String, deadlineNs: UInt64, timeoutMs: UInt64) throws {
        var offset = 0
        while offset < frame.count {
            let now = monotonicNs()
            guard now < deadlineNs else {
                throw ConnectionFailure(rpcError: RPCError(
                    .deadlineExceeded, "\(method) to \(peer) could not be sent within \(timeoutMs) ms (\(offset) of \(frame.count) bytes went out)"))
            }
            link.limitWaits(until: deadlineNs, now: now)
            let written = Glibc.send(link.fd, frame.base + offset, frame.count - offset, Int32(MSG_NOSIGNAL))
            if written < 0 && errno == EINTR { continue }
            if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw ConnectionFailure(rpcError: RPCError(.deadlineExceeded, "\(method) to \(peer) could not be sent within \(timeoutMs) ms (the peer reads nothing)"))
            }
            guard written > 0 else {
                throw ConnectionFailure(rpcError: RPCError(.unavailable, "\(method) to \(peer): connection lost: \(String(cString: strerror(errno)))"))
            }
            offset += written
        }
    }

    /// What the first read of an answer asks for: an answer this small (most are) arrives in
    /// one recv and is parsed where it lies.
    static let firstReadSize = 4_096

    /// A connection's memory for the first read of each answer (a temporary area this large
    /// would come from the heap on every call: Swift keeps only up to 1 KiB on the stack).
    private final class FirstReadArea: @unchecked Sendable {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: BlockingRPCClient.firstReadSize, alignment: 8)
        deinit { bytes.deallocate() }
    }

    /// Reads the answer to call `callID` on `link` and checks it with the link's session keys,
    /// if any: one recv of up to `firstReadSize` bytes, then, for a larger answer, the rest of
    /// the envelope straight into a buffer of its size (a 1 MiB read is copied once on its way
    /// in, not three times).
    private func receive(_ callID: UInt64, on link: inout Link, method: String, deadlineNs: UInt64, timeoutMs: UInt64) throws -> Result<[UInt8], RPCError> {
        let wait = (method: method, deadlineNs: deadlineNs, timeoutMs: timeoutMs)
        let first = link.firstRead.bytes
        var got = 0
        let pollUntilNs = answerPollingNs > 0 ? monotonicNs() &+ answerPollingNs : 0
        while got < Frame.headerSize {
            got += try receiveSome(UnsafeMutableRawBufferPointer(rebasing: first[got...]), from: &link, wait, pollingUntilNs: pollUntilNs)
        }
        let length = first.prefix(Frame.headerSize).reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxFrameSize else {
            throw ConnectionFailure(rpcError: RPCError(.dataLoss, "\(method) to \(peer): \(FrameError.oversize(length: length, limit: maxFrameSize))"))
        }
        let frameSize = Frame.headerSize + length
        // One call is in flight per connection: nothing may come after its answer.
        guard got <= frameSize else {
            throw ConnectionFailure(rpcError: RPCError(.dataLoss, "bad response from \(peer) to \(method): \(got - frameSize) bytes came after the answer"))
        }
        if frameSize <= first.count {
            while got < frameSize { got += try receiveSome(UnsafeMutableRawBufferPointer(rebasing: first[got..<frameSize]), from: &link, wait) }
            return try checkedAnswer(UnsafeRawBufferPointer(rebasing: first[Frame.headerSize..<frameSize]), to: callID, on: link, method: method)
        }
        let payload = try [UInt8](unsafeUninitializedCapacity: length) { buffer, count in
            let head = got - Frame.headerSize
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: first[Frame.headerSize..<got]))
            try receiveExactly(UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[head...]), from: &link, wait)
            count = length
        }
        return try payload.withUnsafeBytes { try checkedAnswer($0, to: callID, on: link, method: method) }
    }

    /// The answer to call `callID` in `payload` (one envelope), its signature checked, read
    /// where it lies: its body, or the callee's status and error.
    private func checkedAnswer(_ payload: UnsafeRawBufferPointer, to callID: UInt64, on link: Link, method: String) throws -> Result<[UInt8], RPCError> {
        do {
            // Refusals come unsigned: a peer that refuses us may be unable to sign.
            return try Envelope.open(payload, verifiedBy: authenticator, at: link.ends.local, session: link.session, refusalsUnsigned: true) { answer, _ in
                if answer.callID == 0 {
                    throw ConnectionFailure(rpcError: RPCError(answer.status, "\(method): \(peer) refused: \(String(cString: answer.error))"))
                }
                // Our own signed request sent back is no answer, nor is another call's.
                guard answer.kind == .response, answer.callID == callID else {
                    let what = answer.kind == .request ? "a request" : "the response to call \(answer.callID)"
                    throw ConnectionFailure(rpcError: RPCError(.dataLoss, "bad response from \(peer) to \(method): \(what), not the response to call \(callID)"))
                }
                return answer.status == .ok ? .success(Array(answer.body)) : .failure(RPCError(answer.status, String(cString: answer.error)))
            }
        } catch let failure as ConnectionFailure {
            throw failure
        } catch {
            let reason = (error as? RefusedSignature)?.error ?? error
            throw ConnectionFailure(rpcError: RPCError(.dataLoss, "bad response from \(peer) to \(method): \(reason)"))
        }
    }

    /// Reads what has come from `link` into `buffer` (at least a byte), waiting in recv itself
    /// until the call's deadline (the receive timeout shrinks to the time left when that is less),
    /// after polling for it until `pollingUntilNs`, yielding the CPU between two polls.
    private func receiveSome(
        _ buffer: UnsafeMutableRawBufferPointer, from link: inout Link, _ wait: (method: String, deadlineNs: UInt64, timeoutMs: UInt64), flags: Int32 = 0,
        pollingUntilNs: UInt64 = 0
    ) throws -> Int {
        while true {
            let now = monotonicNs()
            guard now < wait.deadlineNs else {
                throw ConnectionFailure(rpcError: RPCError(.deadlineExceeded, "\(wait.method) to \(peer) got no answer within \(wait.timeoutMs) ms"))
            }
            link.limitWaits(until: wait.deadlineNs, now: now)
            let polling = now < pollingUntilNs
            let count = recv(link.fd, buffer.baseAddress!, buffer.count, polling ? flags | Int32(MSG_DONTWAIT) : flags)
            if count < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
                if polling { sched_yield() }
                continue
            }
            guard count > 0 else {
                let reason = count == 0 ? "closed by the peer" : String(cString: strerror(errno))
                throw ConnectionFailure(rpcError: RPCError(.unavailable, "\(wait.method) to \(peer): connection lost: \(reason)"))
            }
            return count
        }
    }

    /// Fills `buffer` from `link` (MSG_WAITALL: one recv for all of it, unless the receive
    /// timeout ends a wait first).
    private func receiveExactly(_ buffer: UnsafeMutableRawBufferPointer, from link: inout Link, _ wait: (method: String, deadlineNs: UInt64, timeoutMs: UInt64)) throws {
        var filled = 0
        while filled < buffer.count {
            filled += try receiveSome(UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]), from: &link, wait, flags: Int32(MSG_WAITALL))
        }
    }
}

/// `address:port` as a `sockaddr_in`, or nil when `address` is no dotted IPv4 address.
private func ipv4SocketAddress(_ address: String, port: Int) -> sockaddr_in? {
    var result = sockaddr_in()
    result.sin_family = sa_family_t(AF_INET)
    result.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
    guard inet_pton(AF_INET, address, &result.sin_addr) == 1 else { return nil }
    return result
}

private func withSocketAddress<T>(_ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    withUnsafePointer(to: address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}
