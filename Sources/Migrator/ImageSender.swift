import CMigrator
import Glibc
import Shared

/// Streams a migration's image files to the target Migrator: chunks of up to 1 MiB read
/// straight from disk, each with its CRC-32, at most `window` in flight (flow control: a
/// chunk is sent only when an earlier one was acknowledged, so memory stays at
/// window x chunk size whatever the job's size), optionally capped in bytes per second.
struct ImageSender {
    static let chunkSize = 1 << 20
    static let window = 4

    let peers: PeerClients
    let target: UInt32
    let transfer: String
    /// 0 = as fast as the network goes.
    let maxBytesPerSecond: UInt64
    /// Test hook (OMX_MIGRATOR_FAULT=corrupt-chunk): damage one chunk after its CRC was taken.
    let corruptOneChunk: Bool

    /// The regular files under `directory`, relative to it, in a stable order.
    static func files(in directory: String, prefix: String = "") -> [ImageFile] {
        var result: [ImageFile] = []
        for name in ((try? listDirectory(directory)) ?? []).sorted() {
            let path = "\(directory)/\(name)"
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFREG: result.append(ImageFile(path: prefix + name, size: UInt64(info.st_size)))
            case S_IFDIR: result += files(in: path, prefix: prefix + name + "/")
            default: continue
            }
        }
        return result
    }

    /// Sends every file of `files` under `directory`; returns the bytes sent.
    /// - Throws: `RPCError` from the target (checksum mismatch, unreachable, deadline) or
    ///   naming a file that could not be read.
    func send(_ files: [ImageFile], from directory: String) async throws -> UInt64 {
        let started = monotonicNs()
        var sent: UInt64 = 0
        var chunkNumber = 0
        // One read buffer: each chunk is serialized (copied) before the next read.
        var buffer = [UInt8](repeating: 0, count: ImageSender.chunkSize)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for (index, file) in files.enumerated() {
                let path = "\(directory)/\(file.path)"
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw RPCError(.internal, "\(path): cannot read: \(String(cString: strerror(errno)))") }
                defer { close(fd) }
                var offset: UInt64 = 0
                repeat {
                    let length = Int(min(UInt64(ImageSender.chunkSize), file.size - offset))
                    let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(offset)) }
                    guard count == length else { throw RPCError(.internal, "\(path): short read at offset \(offset)") }
                    chunkNumber += 1
                    let damage = corruptOneChunk && chunkNumber == 2 && length > 0
                    let chunk = buffer.withUnsafeMutableBytes { raw -> PackedMessage in
                        let data = UnsafeRawBufferPointer(rebasing: raw[0..<length])
                        let crc = omx_crc32(data.baseAddress?.assumingMemoryBound(to: UInt8.self), length)
                        if damage { raw[length / 2] ^= 0xff }
                        return PackedMessage(wire: TransferChunk.encode(transfer: transfer, file: UInt32(index), offset: offset, data: data, crc32: crc))
                    }
                    if inFlight == ImageSender.window {
                        try await group.next()
                        inFlight -= 1
                    }
                    group.addTask { [peers, target] in
                        _ = try await peers.call(target, "Migrator.Chunk", chunk, returning: Empty.self, timeoutMs: 30_000)
                    }
                    inFlight += 1
                    offset += UInt64(length)
                    sent += UInt64(length)
                    try await throttle(sent: sent, since: started)
                } while offset < file.size
            }
            try await group.waitForAll()
        }
        return sent
    }

    private func throttle(sent: UInt64, since started: UInt64) async throws {
        guard maxBytesPerSecond > 0 else { return }
        let dueNs = sent * 1_000_000_000 / maxBytesPerSecond
        let elapsed = monotonicNs() - started
        if dueNs > elapsed { try await Task.sleep(for: .nanoseconds(Int64(dueNs - elapsed))) }
    }
}
