import CFileSystem
import Glibc
import Shared

/// The calls on a gateway's open files (`OpenFiles`): open, read, write, fsync, locks, and the
/// attribute calls that may name a handle instead of a path.
extension FileGateway {
    func open(_ request: FsRequest, _ caller: Caller, _ lane: Lane) throws -> FsResponse {
        let (fd, attr) = try tree.open(request.path, flags: request.flags, mode: request.mode)
        var response = FsResponse()
        response.attr = attr
        response.handle = handles.add(fd: fd, path: request.path, append: request.flags & O_APPEND != 0, owner: caller, lane: lane)
        return response
    }

    /// Reads from an open handle. With `cachedOnly`, takes only what the page cache holds and
    /// returns nil when the read would wait for the disk. Reading needs no credentials: the
    /// kernel checked them when the file was opened.
    func read(_ request: FsRequest, caller: Caller, cachedOnly: Bool) throws -> FsResponse? {
        let handle = try handles.file(request.handle, for: caller, "read")
        let size = min(Int(request.size), FileGateway.maxChunk)
        var response = FsResponse()
        // Not zeroed: only what the read fills is kept.
        response.data = [UInt8](unsafeUninitializedCapacity: size) { _, count in count = size }
        let count = response.data.withUnsafeMutableBytes { buffer in
            cachedOnly ? omx_pread_cached(handle.fd, buffer.baseAddress, size, off_t(request.offset)) : pread(handle.fd, buffer.baseAddress, size, off_t(request.offset))
        }
        if cachedOnly {
            guard count >= 0 else { return nil }
            // Short: the end of the file, or the rest is not in the cache.
            var info = stat()
            if count < size && (fstat(handle.fd, &info) != 0 || Int64(request.offset) + Int64(count) < Int64(info.st_size)) { return nil }
        }
        guard count >= 0 else { throw ExportedTree.Failure(errno, handle.path, "read") }
        (cachedOnly ? io.readsFromCache : io.readsFromDisk).add()
        response.data.removeLast(size - count)
        response.size = UInt32(count)
        tally(request, caller, read: UInt64(count), written: 0)
        return response
    }

    func write(_ request: FsRequest, _ caller: Caller) throws -> FsResponse {
        let handle = try handles.file(request.handle, for: caller, "write")
        guard request.data.count <= FileGateway.maxChunk else { throw ExportedTree.Failure(EFBIG, handle.path, "write of more than 1 MiB at once") }
        let count = request.data.withUnsafeBytes { bytes in
            handle.append ? Glibc.write(handle.fd, bytes.baseAddress, bytes.count) : pwrite(handle.fd, bytes.baseAddress, bytes.count, off_t(request.offset))
        }
        guard count >= 0 else { throw ExportedTree.Failure(errno, handle.path, "write") }
        var response = FsResponse()
        response.size = UInt32(count)
        tally(request, caller, read: 0, written: UInt64(count))
        return response
    }

    func fsync(_ request: FsRequest, _ caller: Caller) throws -> FsResponse {
        let handle = try handles.file(request.handle, for: caller, "fsync")
        guard (request.datasync ? fdatasync(handle.fd) : Glibc.fsync(handle.fd)) == 0 else { throw ExportedTree.Failure(errno, handle.path, "fsync") }
        return FsResponse()
    }

    /// Takes, changes or drops a lock (`FileLocks.set`); the handle proves the access it needs.
    func lock(_ request: FsRequest, _ caller: Caller) throws -> FsResponse {
        let file = try handles.file(request.handle, for: caller, "lock")
        guard let lock = request.lock else { throw ExportedTree.Failure(EINVAL, file.path, "lock: the request names no lock") }
        var response = FsResponse()
        response.locksHeld = try locks.set(lock, on: file, handle: request.handle, client: request.client)
        return response
    }

    /// The lock that would conflict with the one asked (`FileLocks.test`).
    func testLock(_ request: FsRequest, _ caller: Caller) throws -> FsResponse {
        let file = try handles.file(request.handle, for: caller, "getlk")
        guard let lock = request.lock else { throw ExportedTree.Failure(EINVAL, file.path, "getlk: the request names no lock") }
        var response = FsResponse()
        response.lock = try locks.test(lock, on: file, client: request.client)
        return response
    }

    /// fstat of an open file (which may have been renamed or unlinked since it was opened).
    func attributes(_ id: UInt64, _ caller: Caller) throws -> FileAttr {
        let file = try handles.file(id, for: caller, "getattr")
        var info = stat()
        guard fstat(file.fd, &info) == 0 else { throw ExportedTree.Failure(errno, file.path, "getattr") }
        return tree.attributes(info)
    }

    /// Where a mode, owner or times change runs: its open file's lane, or its path's.
    func attributeLane(_ request: FsRequest) -> Lane {
        request.handle != 0 ? handleLane(request.handle, data: false) : metadataLane(request.path)
    }

    /// `onFile` on the descriptor of the request's open file (returning 0 or -1 with errno),
    /// or `onPath` when it names none (the attributes it returns go in the answer).
    func onHandleOrPath(
        _ request: FsRequest, _ caller: Caller, _ operation: String, _ onFile: (Int32) -> Int32, onPath: () throws -> FileAttr?
    ) throws -> FsResponse {
        guard request.handle != 0 else {
            var answer = FsResponse()
            answer.attr = try onPath()
            return answer
        }
        let file = try handles.file(request.handle, for: caller, operation)
        guard onFile(file.fd) == 0 else { throw ExportedTree.Failure(errno, file.path, operation) }
        return FsResponse()
    }

    func truncate(_ request: FsRequest, _ caller: Caller) throws -> FsResponse {
        if request.handle != 0 {
            let handle = try handles.file(request.handle, for: caller, "truncate")
            guard ftruncate(handle.fd, off_t(request.offset)) == 0 else { throw ExportedTree.Failure(errno, handle.path, "truncate") }
        } else {
            try tree.truncate(request.path, size: request.offset)
        }
        return FsResponse()
    }
}
