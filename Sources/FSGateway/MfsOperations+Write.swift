import CFuse
import Glibc
import Shared

/// Writes through the mount: queued behind the writer (`WriteBehind`), or sent at once.
extension MfsOperations {
    /// The FUSE write of `size` bytes at `offset` to the open file `info` names.
    static func write(_ buffer: UnsafePointer<CChar>?, _ size: Int, _ offset: off_t, _ info: UnsafeMutablePointer<fuse_file_info>?) -> Int32 {
        guard let info, let buffer else { return -EINVAL }
        let id = info.pointee.fh
        MfsOperations.mount.forgetCreatedAttr(handle: id)
        forgetWritten(id)
        if let file = MfsOperations.mount.writeBehind.file(id), size <= 1 << 20 {
            let caller = MfsOperations.mount.request("")
            let tid = fuse_get_context()?.pointee.pid ?? 0
            // Queued first: a read or stat through another name waits for it.
            defer { MfsOperations.mount.changedThrough(handle: id) }
            return MfsOperations.mount.writeBehind.write(file, by: tid, offset: Int64(offset), data: Array(UnsafeRawBufferPointer(start: buffer, count: size))) { data in
                defer { forgetWritten(id) }
                var done = 0
                var attempts = 0
                while done < data.count {
                    let (code, answer) = MfsOperations.mount.callFile(id, "Write", caller: caller) {
                        $0.offset = Int64(offset) + Int64(done)
                        $0.data = done == 0 ? data : Array(data[done...])
                    }
                    if code == 0 && answer.size > 0 {
                        done += Int(answer.size)  // a short write: send the rest, which says why
                        continue
                    }
                    // A lost gateway instance may be restarting: try again for up to 10 s.
                    attempts += 1
                    guard code == -EIO, attempts < 50 else { return code == 0 ? -EIO : code }
                    usleep(200_000)
                }
                return 0
            }
        }
        // Unqueued (an append, or a write over 1 MiB): the file's queued writes through
        // other handles land first, as they were made first (an append finds its offset at
        // the gateway, after them).
        MfsOperations.drainWrites(of: id)
        defer {
            forgetWritten(id)
            MfsOperations.mount.changedThrough(handle: id)
        }
        var done = 0
        while done < size {
            let piece = min(size - done, 1 << 20)
            let (code, answer) = MfsOperations.mount.callFile(info.pointee.fh, "Write") {
                $0.offset = Int64(offset) + Int64(done)
                $0.data = Array(UnsafeRawBufferPointer(start: buffer + done, count: piece))
            }
            guard code == 0 else { return done > 0 ? Int32(done) : code }
            done += Int(answer.size)
            if answer.size == 0 { break }
        }
        return Int32(done)
    }

    /// The mount's cache forgets the size and times of the file open as our handle `id`: when a
    /// write is made, and again once it landed (an answer read meanwhile, an open's say, may
    /// predate it, and the mount hears no news of its own changes).
    private static func forgetWritten(_ id: UInt64) {
        guard let open = mount.file(id) else { return }
        mount.cache.written(open.node, open.path)
    }

    /// Waits for the writes queued to the file a metadata call names (through any of its names,
    /// and the call's own handle): a mode, owner or time set after them would be undone by them
    /// (`cp -p` sets the times through the descriptor it wrote, before it closes it; a write
    /// clears set-user-ID bits).
    static func drainWrites(_ info: UnsafeMutablePointer<fuse_file_info>?, _ node: UInt32, _ rest: String) {
        mount.drainWrites(node: node, path: rest)
        if let id = info?.pointee.fh, id != 0 { drainWrites(of: id) }
    }

    /// Waits for the writes in flight to the file open as our handle `id`, through any handle.
    static func drainWrites(of id: UInt64) {
        guard let open = MfsOperations.mount.file(id) else { return }
        MfsOperations.mount.drainWrites(node: open.node, path: open.path)
        // Its own, whatever name it was opened under (a rename through the mount moves `path`).
        MfsOperations.mount.writeBehind.file(id)?.drain()
    }
}
