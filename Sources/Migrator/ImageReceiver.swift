import CMigrator
import Glibc
import Shared
import Synchronization

/// The target's side of one image transfer: writes each chunk where it belongs after
/// checking its CRC-32 and bounds, and knows when every file is complete. Chunks may be
/// written from several threads at once.
final class ImageReceiver: Sendable {
    let transfer: String
    let directory: String
    let begin: TransferBegin
    /// The announced files, open for writing. They close when the receiver goes, that is once
    /// the transfer is done or dropped and no chunk is being written any more: a chunk in
    /// flight when its transfer is dropped writes into its own file, never into a descriptor
    /// number the process gave to something else meanwhile.
    private let descriptors: [Int32]
    private let received: Mutex<[UInt64]>
    /// When the transfer began or its last chunk arrived (monotonic ns).
    private let lastActivityNs = Atomic<UInt64>(monotonicNs())

    /// Creates `directory` and the (empty) files announced by `begin`; on failure, leaves
    /// nothing behind.
    /// - Throws: `RPCError` naming a bad path or a file that cannot be created.
    init(begin: TransferBegin, directory: String) throws {
        transfer = begin.transfer
        self.directory = directory
        self.begin = begin
        received = Mutex(Array(repeating: 0, count: begin.files.count))
        for file in begin.files {
            let parts = file.path.split(separator: "/")
            guard !file.path.hasPrefix("/"), !parts.contains(".."), !parts.isEmpty else {
                throw RPCError(.invalidArgument, "Migrator.Receive: image path \"\(file.path)\" leaves the image directory")
            }
        }
        var opened: [Int32] = []
        do {
            try makeDirectories(directory)
            for file in begin.files {
                let parts = file.path.split(separator: "/")
                if parts.count > 1 { try makeDirectories("\(directory)/\(parts.dropLast().joined(separator: "/"))") }
                let path = "\(directory)/\(file.path)"
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw RPCError(.internal, "\(path): cannot create: \(String(cString: strerror(errno)))") }
                opened.append(fd)
            }
        } catch {
            for fd in opened { Glibc.close(fd) }
            removeTree(directory)
            throw error
        }
        descriptors = opened
    }

    deinit {
        for fd in descriptors { Glibc.close(fd) }
    }

    /// How long no chunk has arrived, at monotonic time `now`.
    func idleNs(at now: UInt64) -> UInt64 { now &- lastActivityNs.load(ordering: .relaxed) }

    /// Writes one chunk's `data`.
    /// - Throws: `RPCError` DATA_LOSS on a CRC mismatch, INVALID_ARGUMENT on a chunk that
    ///   does not fit the announced files.
    func write(_ chunk: TransferChunk.Header, _ data: UnsafeRawBufferPointer) throws {
        let index = Int(chunk.file)
        guard index < descriptors.count else {
            throw RPCError(.invalidArgument, "Migrator.Chunk: transfer \(transfer) has no file #\(chunk.file)")
        }
        let file = begin.files[index]
        guard chunk.offset <= file.size, UInt64(data.count) <= file.size - chunk.offset else {
            throw RPCError(.invalidArgument, "Migrator.Chunk: \(file.path) bytes \(chunk.offset)+\(data.count) run past its size \(file.size)")
        }
        let crc = omx_crc32(data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count)
        guard crc == chunk.crc32 else {
            throw RPCError(.dataLoss, "Migrator.Chunk: checksum mismatch in \(file.path) at offset \(chunk.offset) (CRC-32 \(hex(crc)), sender said \(hex(chunk.crc32)))")
        }
        let written = pwrite(descriptors[index], data.baseAddress, data.count, off_t(chunk.offset))
        guard written == data.count else {
            throw RPCError(.internal, "\(directory)/\(file.path): cannot write: \(String(cString: strerror(errno)))")
        }
        received.withLock { $0[index] += UInt64(written) }
        lastActivityNs.store(monotonicNs(), ordering: .relaxed)
    }

    /// The files not yet complete, or nil when every byte arrived.
    var missing: String? {
        let received = received.withLock { $0 }
        let incomplete = begin.files.indices.filter { received[$0] != begin.files[$0].size }
        guard !incomplete.isEmpty else { return nil }
        return incomplete.prefix(3).map { "\(begin.files[$0].path) (\(received[$0]) of \(begin.files[$0].size) bytes)" }.joined(separator: ", ")
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}
