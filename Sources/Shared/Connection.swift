import CLibUV
import Glibc

/// One TCP or Unix-socket stream on an event loop, carrying frames both ways.
///
/// Loop thread only. The libuv handle keeps the connection alive (an `Unmanaged` retain in
/// `handle->data`) until libuv's close callback, where both are released.
final class Connection {
    enum Transport { case tcp, unix }

    let loop: EventLoop
    let transport: Transport
    let stream: UnsafeMutablePointer<uv_stream_t>
    /// Who is at the other end, for errors and logs ("127.0.0.2:51234", "unix:/run/omx/x.sock").
    var peer: String
    /// Called for each complete frame's payload, which is valid only during the call.
    var onFrame: ((Connection, UnsafeRawBufferPointer) -> Void)?
    /// Called when the byte stream cannot be cut into frames; reading has stopped.
    var onFrameError: ((Connection, FrameError) -> Void)?
    /// Called once, after the handle is closed; the error is nil for an orderly close.
    var onClose: ((Connection, UVError?) -> Void)?
    /// The session keys agreed on this connection (TCP, after a `Session` call), if any.
    var session: SessionKeys?
    /// Both ends of a TCP connection, which signatures name; empty for a Unix socket. Read by
    /// `readPeer()` as soon as the connection is made (later, a peer gone would leave them empty).
    private(set) var ends = SocketEnds.unsigned
    /// Who is at the other end of a Unix socket (read by `readPeer()`); nil for TCP, or when
    /// the kernel did not say.
    private(set) var unixCredentials: PeerCredentials?
    /// When the connection was made.
    let madeNs = monotonicNs()
    /// A server's bookkeeping (`ConnectionGuard`): whom the connection counts against once
    /// admitted, whether it has yet to show a valid signature (TCP), and whether it was told it
    /// must go (the next sweep closes it at once).
    var quotaHolder: ConnectionQuota.Holder?
    var awaitingSignature = false
    var toldToGo = false
    /// Stop reading while the peer leaves more than `queuedOutputLimit` bytes of our output
    /// unread, and read again once it took three quarters of them: a server's connections do,
    /// so that a caller who sends requests without reading the answers cannot make it queue
    /// answers without end. (A client must not: two sides waiting for each other to read would
    /// never move again.)
    var pausesReadingWhilePeerLags = false
    /// The calls read from this connection and not yet answered (a server's count).
    var callsInFlight = 0
    /// A server's tasks running this connection's calls, by token, cancelled when it closes;
    /// the tokens of calls whose task ended before it could be kept; the next token.
    var runningCalls: [UInt64: Task<Void, Never>] = [:]
    var callsEndedAtOnce: Set<UInt64> = []
    var nextCallToken: UInt64 = 0
    static let queuedOutputLimit = 64 << 20
    private(set) var readingPaused = false
    /// The rest of a read during which reading paused: cut into frames once it resumes.
    private var heldInput: [UInt8] = []
    /// When the frame under way began to arrive; nil with none under way.
    private var frameStartedNs: UInt64?
    /// While reading is paused: when our queued output last shrank, and its size then.
    private var outputProgress: (atNs: UInt64, queued: Int)?

    private var decoder: FrameDecoder
    /// Frames waiting for the end of this loop iteration, written together in one writev.
    private var output: [OutgoingBytes] = []
    /// Bytes in `output`.
    private var outputBytes = 0
    /// Frames, or bytes, queued in one loop iteration that go out at once instead of at its end:
    /// the peer starts on them while this side works through the rest of a burst (a batch of
    /// pipelined calls), so both ends are busy at the same time rather than taking turns.
    private static let eagerFlushFrames = 16
    private static let eagerFlushBytes = 64 << 10
    private var flushScheduled = false
    private(set) var isClosed = false
    /// Set by `closeAfterFlush`: the stream closes once what is queued is written; nothing more
    /// is sent on it.
    private(set) var isClosingAfterFlush = false
    private var closeReason: UVError?
    private let readBuffer: UnsafeMutableRawPointer
    private static let readBufferSize = 256 << 10

    /// A new, unconnected stream handle on `loop`.
    init(loop: EventLoop, transport: Transport, peer: String, maxFrameSize: Int) throws {
        self.loop = loop
        self.transport = transport
        self.peer = peer
        decoder = FrameDecoder(maxFrameSize: maxFrameSize)
        let size = max(MemoryLayout<uv_tcp_t>.size, MemoryLayout<uv_pipe_t>.size)
        stream = malloc(size)!.bindMemory(to: uv_stream_t.self, capacity: 1)
        readBuffer = malloc(Connection.readBufferSize)!
        let rc: Int32
        switch transport {
        case .tcp: rc = uv_tcp_init(loop.uvLoop, stream.reinterpreted(as: uv_tcp_t.self))
        case .unix: rc = uv_pipe_init(loop.uvLoop, stream.reinterpreted(as: uv_pipe_t.self), 0)
        }
        guard rc == 0 else {
            free(stream)
            free(readBuffer)
            throw UVError(code: rc, operation: "init stream", peer: peer)
        }
        if transport == .tcp { uv_tcp_nodelay(stream.reinterpreted(as: uv_tcp_t.self), 1) }
        handle.pointee.data = Unmanaged.passRetained(self).toOpaque()
        loop.openConnections[ObjectIdentifier(self)] = self
    }

    var handle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(stream).assumingMemoryBound(to: uv_handle_t.self)
    }

    static func owner(_ stream: UnsafeMutablePointer<uv_stream_t>) -> Connection {
        Unmanaged<Connection>.fromOpaque(stream.pointee.data!).takeUnretainedValue()
    }

    /// Starts delivering frames to `onFrame`.
    func startReading() throws {
        try uvCheck(beginReading(), "read", peer: peer)
    }

    private func beginReading() -> Int32 {
        uv_read_start(stream, { handle, _, buffer in
                let connection = Unmanaged<Connection>.fromOpaque(handle!.pointee.data!).takeUnretainedValue()
                buffer!.pointee = uv_buf_init(connection.readBuffer.assumingMemoryBound(to: CChar.self), UInt32(Connection.readBufferSize))
            }, { stream, nread, buffer in
                let connection = Connection.owner(stream!)
                if nread > 0 {
                    connection.received(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: nread))
                } else if nread < 0 {
                    let error = nread == Int(UV_EOF.rawValue) ? nil : UVError(code: Int32(nread), operation: "read", peer: connection.peer)
                    connection.close(error)
                }
            })
    }

    /// Pauses reading while the peer lags behind our output, or resumes once it caught up
    /// (see `pausesReadingWhilePeerLags`).
    private func paceReading() {
        guard pausesReadingWhilePeerLags, !isClosed, !isClosingAfterFlush else { return }
        let queued = uv_stream_get_write_queue_size(stream)
        if !readingPaused && queued > Connection.queuedOutputLimit {
            readingPaused = true
            uv_read_stop(stream)
        } else if readingPaused && queued <= Connection.queuedOutputLimit / 4 {
            readingPaused = false
            // A frame under way waited for us, not for the peer.
            if decoder.bufferedCount > 0 { frameStartedNs = monotonicNs() }
            if !heldInput.isEmpty {
                let held = heldInput
                heldInput = []
                held.withUnsafeBytes { received($0) }
                guard takesFrames else { return }
            }
            let rc = beginReading()
            if rc < 0 { close(UVError(code: rc, operation: "read", peer: peer)) }
        }
    }

    /// Reads who is at the other end, once, as soon as the connection is made: both ends of a
    /// TCP connection (`ends`), the peer's credentials on a Unix socket (`unixCredentials`).
    func readPeer() {
        switch transport {
        case .tcp:
            var fd: uv_os_fd_t = -1
            if uv_fileno(handle, &fd) == 0 { ends = SocketEnds(fd: fd) }
        case .unix:
            unixCredentials = PeerCredentials(pipe: stream.reinterpreted(as: uv_pipe_t.self))
        }
    }

    /// Why a server should give up on this connection now: a frame has been arriving for longer
    /// than `timeoutNs` while we read, or, with reading paused or the connection closing after
    /// its writes, the peer has read none of our answers for that long; nil when neither.
    /// Called at intervals by the server.
    func overdue(nowNs: UInt64, timeoutNs: UInt64) -> String? {
        if !readingPaused, !isClosingAfterFlush, let started = frameStartedNs, nowNs - started > timeoutNs {
            return "a frame began arriving \(secondsText(nowNs - started)) ago and is still incomplete"
        }
        guard readingPaused || isClosingAfterFlush else {
            outputProgress = nil
            return nil
        }
        let queued = uv_stream_get_write_queue_size(stream)
        guard let progress = outputProgress, queued >= progress.queued else {
            outputProgress = (nowNs, queued)
            return nil
        }
        return nowNs - progress.atNs > timeoutNs ? "the peer read none of its \(queued) bytes of answers for \(secondsText(nowNs - progress.atNs))" : nil
    }

    /// Whether frames are still wanted: not once the connection closes, nor while reading is
    /// paused (the frames of a read that paused it wait in `heldInput`).
    private var takesFrames: Bool { !isClosed && !isClosingAfterFlush && !readingPaused }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        let hadPartialFrame = decoder.bufferedCount > 0
        var delivered = false
        do {
            let taken = try decoder.feed(bytes) { frame in
                delivered = true
                onFrame?(self, frame)
                return takesFrames
            }
            if taken < bytes.count && readingPaused && !isClosed && !isClosingAfterFlush { heldInput = Array(bytes[taken...]) }
            if decoder.bufferedCount == 0 {
                frameStartedNs = nil
            } else if delivered || !hadPartialFrame {
                frameStartedNs = monotonicNs()
            }
        } catch let error as FrameError {
            uv_read_stop(stream)
            onFrameError?(self, error)
        } catch {
            preconditionFailure("FrameDecoder throws only FrameError")
        }
    }

    /// Queues one frame; it is written at the end of this loop iteration, or now when the
    /// frames queued meanwhile reach `eagerFlushFrames` or `eagerFlushBytes`.
    func send(_ frame: OutgoingBytes) {
        guard !isClosed, !isClosingAfterFlush else { return }
        output.append(frame)
        outputBytes += frame.count
        if output.count >= Connection.eagerFlushFrames || outputBytes >= Connection.eagerFlushBytes {
            flush()
        } else {
            scheduleFlush()
        }
    }

    private func scheduleFlush() {
        if !flushScheduled {
            flushScheduled = true
            loop.scheduleFlush(self)
        }
    }

    /// Writes the queued frames in one `writev` when the socket takes them all at once (the
    /// common case: no write request, no change to the poll set, no allocation); whatever is
    /// left goes to libuv's write queue and stays alive until it is written.
    func flush() {
        flushScheduled = false
        outputBytes = 0
        guard !isClosed, !output.isEmpty else { return }
        let count = output.count
        // libuv copies the buffer array itself, so it can live on the stack.
        withUnsafeTemporaryAllocation(of: uv_buf_t.self, capacity: count) { buffers in
            for (index, frame) in output.enumerated() {
                buffers[index] = uv_buf_init(frame.base.assumingMemoryBound(to: CChar.self), UInt32(frame.count))
            }
            var first = 0
            let written = uv_try_write(stream, buffers.baseAddress, UInt32(count))
            if written < 0 && written != UV_EAGAIN.rawValue {
                return close(UVError(code: written, operation: "write", peer: peer))
            }
            if written > 0 {
                var remaining = Int(written)
                while first < count && remaining >= buffers[first].len {
                    remaining -= buffers[first].len
                    first += 1
                }
                if first == count {
                    output.removeAll(keepingCapacity: true)
                    return
                }
                buffers[first].base += remaining
                buffers[first].len -= Int(remaining)
            }
            let frames = output
            output = []
            queueWrite(UnsafeMutableBufferPointer(rebasing: buffers[first...]), keeping: frames)
        }
        paceReading()
    }

    /// Hands `buffers` to libuv's write queue; `frames`, which they point into, live until
    /// the write completes.
    private func queueWrite(_ buffers: UnsafeMutableBufferPointer<uv_buf_t>, keeping frames: [OutgoingBytes]) {
        let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        let keepAlive = Unmanaged.passRetained(WrittenFrames(frames))
        request.pointee.data = keepAlive.toOpaque()
        let rc = uv_write(request, stream, buffers.baseAddress, UInt32(buffers.count)) { request, status in
            Unmanaged<WrittenFrames>.fromOpaque(request!.pointee.data!).release()
            let stream = request!.pointee.handle!
            request!.deallocate()
            if status < 0 && status != UV_ECANCELED.rawValue {
                let connection = Connection.owner(stream)
                connection.close(UVError(code: status, operation: "write", peer: connection.peer))
            } else if status == 0 {
                Connection.owner(stream).paceReading()
            }
        }
        if rc < 0 {
            keepAlive.release()
            request.deallocate()
            close(UVError(code: rc, operation: "write", peer: peer))
        }
    }

    /// Writes what is queued, then closes the stream (used after refusing a peer). Called again
    /// meanwhile, it goes on waiting for the writes.
    func closeAfterFlush() {
        guard !isClosed, !isClosingAfterFlush else { return }
        flush()
        isClosingAfterFlush = true
        uv_read_stop(stream)
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        let rc = uv_shutdown(request, stream) { request, _ in
            let stream = request!.pointee.handle!
            request!.deallocate()
            Connection.owner(stream).close(nil)
        }
        if rc < 0 {
            request.deallocate()
            close(nil)
        }
    }

    /// Closes the stream now; queued output that was not yet written is dropped.
    func close(_ error: UVError?) {
        guard !isClosed else { return }
        isClosed = true
        closeReason = error
        output = []
        outputBytes = 0
        // A stopping loop closed it already (a callback of that close, such as a connect
        // cancelled, led here): closing it twice would be libuv's assertion.
        guard uv_is_closing(handle) == 0 else { return }
        uv_close(handle) { handle in
            let connection = Unmanaged<Connection>.fromOpaque(handle!.pointee.data!).takeRetainedValue()
            connection.loop.openConnections[ObjectIdentifier(connection)] = nil
            connection.onClose?(connection, connection.closeReason)
            connection.onClose = nil
            connection.onFrame = nil
            connection.onFrameError = nil
            free(connection.readBuffer)
            free(handle)
        }
    }
}

/// The frames of one `uv_write`, kept alive until libuv is done with them (a class, so that
/// keeping them costs one retain and no bridging of the array).
private final class WrittenFrames {
    let frames: [OutgoingBytes]
    init(_ frames: [OutgoingBytes]) { self.frames = frames }
}
