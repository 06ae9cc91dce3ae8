import Foundation
import Shared
import XCTest

/// Write-behind through a real /mfs mount: writes return before the gateway wrote them, yet
/// stat, reads, fsync, appends, truncating opens and times set afterwards see them, and a
/// failure is reported to the writer (later write, fsync or close), never lost.
final class WriteBehindEndToEndTests: XCTestCase {
    func testQueuedWritesAreSeenByStatAndReadsAndTheirFailuresReachTheWriter() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 62, nodes: 2)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let listed = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 2)
        XCTAssertTrue(listed)
        let disk = "\(cluster.dir)/scratch"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"

        // 8 MiB in 1 MiB writes, then at once: the size, another descriptor's read, the disk after fsync.
        let chunk = [UInt8]((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 7) })
        let fd = open("\(remote)/big.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        for index in 0..<8 { XCTAssertEqual(pwrite(fd, chunk, chunk.count, off_t(index << 20)), chunk.count) }
        var info = stat()
        XCTAssertEqual(stat("\(remote)/big.bin", &info), 0)
        XCTAssertEqual(info.st_size, 8 << 20, "stat waits for the writes in flight")
        let reader = open("\(remote)/big.bin", O_RDONLY)
        var last = [UInt8](repeating: 0, count: chunk.count)
        XCTAssertEqual(pread(reader, &last, last.count, 7 << 20), chunk.count)
        XCTAssertEqual(last, chunk, "another descriptor reads what was written")
        close(reader)
        XCTAssertEqual(fsync(fd), 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(disk)/big.bin")).count, 8 << 20)
        XCTAssertEqual(close(fd), 0)

        // Writes to a file renamed through the mount since it was opened: fsync still waits for
        // them (they are queued under the name it was opened with).
        let renamed = open("\(remote)/before.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertEqual(rename("\(remote)/before.bin", "\(remote)/after.bin"), 0)
        for index in 0..<8 { XCTAssertEqual(pwrite(renamed, chunk, chunk.count, off_t(index << 20)), chunk.count) }
        XCTAssertEqual(fsync(renamed), 0)
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: "\(disk)/after.bin"))[.size] as? Int, 8 << 20, "every write landed before fsync returned")
        XCTAssertEqual(close(renamed), 0)

        // Writes queued through one descriptor come before what another does next: an append
        // lands after them, a truncating open empties the file of them, and a stat by the name
        // the file was renamed to counts them. (Each round is a fresh race; 20 of them.)
        for round in 0..<20 {
            let writer = open("\(remote)/order.bin", O_RDWR | O_CREAT | O_TRUNC, 0o644)
            let appender = open("\(remote)/order.bin", O_WRONLY | O_APPEND)
            XCTAssertEqual(pwrite(writer, chunk, 3000, 0), 3000)
            XCTAssertEqual(write(appender, chunk, 100), 100)
            XCTAssertEqual(fstat(writer, &info), 0)
            XCTAssertEqual(info.st_size, 3100, "round \(round): the append came after the queued write")
            XCTAssertEqual(pwrite(writer, chunk, 3000, 0), 3000)
            let truncating = open("\(remote)/order.bin", O_RDWR | O_TRUNC)
            XCTAssertEqual(fstat(truncating, &info), 0)
            XCTAssertEqual(info.st_size, 0, "round \(round): the truncating open came after the queued write")
            XCTAssertEqual(pwrite(writer, chunk, 2000, 0), 2000)
            XCTAssertEqual(rename("\(remote)/order.bin", "\(remote)/moved.bin"), 0)
            XCTAssertEqual(stat("\(remote)/moved.bin", &info), 0)
            XCTAssertEqual(info.st_size, 2000, "round \(round): a stat by the new name waits for the queued write")
            for fd in [writer, appender, truncating] { close(fd) }
            XCTAssertEqual(unlink("\(remote)/moved.bin"), 0)
        }

        // Times set through the descriptor that wrote, before its close (`cp -p`): the queued
        // writes land first, and would move the modification time on after it.
        let copy = open("\(remote)/copy.bin", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        for index in 0..<8 { XCTAssertEqual(pwrite(copy, chunk, chunk.count, off_t(index << 20)), chunk.count) }
        let times = [timespec(tv_sec: 978_307_200, tv_nsec: 0), timespec(tv_sec: 978_307_200, tv_nsec: 0)]
        XCTAssertEqual(futimens(copy, times), 0)
        XCTAssertEqual(close(copy), 0)
        XCTAssertEqual(stat("\(disk)/copy.bin", &info), 0)
        XCTAssertEqual(info.st_mtim.tv_sec, 978_307_200, "the modification time set after the writes stays")

        // Two descriptors of one file and one of its hard link, written in turn over each
        // other's ranges: the last write of each byte wins, as on the disk (the gateway applies
        // writes in flight together in any order: each waits for those it overlaps).
        let twice = "\(remote)/twice.bin"
        let first = open(twice, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        XCTAssertEqual(link(twice, "\(remote)/twice-link.bin"), 0)
        let descriptors = [first, open(twice, O_RDWR), open("\(remote)/twice-link.bin", O_RDWR)]
        // Each 4 KiB region is written three times at once, through each descriptor in turn.
        var expected = [UInt8](repeating: 0, count: 1024 << 12)
        for region in 0..<1024 {
            for turn in 0..<3 {
                let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: region &* 3 &+ turn), count: 1 << 12)
                XCTAssertEqual(pwrite(descriptors[(region + turn) % 3], bytes, bytes.count, off_t(region << 12)), bytes.count)
                expected.replaceSubrange(region << 12..<(region + 1) << 12, with: bytes)
            }
        }
        for descriptor in descriptors { XCTAssertEqual(close(descriptor), 0) }
        let landed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(disk)/twice.bin")))
        XCTAssertEqual(landed.count, expected.count)
        XCTAssertTrue(landed == expected, "the last write of each byte wins: \(zip(landed, expected).filter { $0 != $1 }.count) bytes differ")

        // A full file system on node 2 (a 1 MiB tmpfs): the failure reaches the writer.
        let small = "\(disk)/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        XCTAssertEqual(LocalCluster.runAbsolute("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", small]).status, 0)
        defer { _ = LocalCluster.runAbsolute("/bin/umount", ["-l", small]) }
        let full = open("\(remote)/small/f", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(full, 0)
        var failure: Int32 = 0
        for index in 0..<4 where failure == 0 {
            if pwrite(full, chunk, chunk.count, off_t(index << 20)) < 0 { failure = errno }
        }
        if failure == 0, fsync(full) != 0 { failure = errno }
        let closed = close(full)
        XCTAssertEqual(failure, ENOSPC, "a write or fsync reports ENOSPC: \(String(cString: strerror(failure)))")
        XCTAssertEqual(closed, -1, "close reports the failure too")

        // One thread writes, another closes (as in Go, Java or a thread pool): the close still
        // waits for the writes in flight and reports their failure.
        XCTAssertEqual(unlink("\(small)/f"), 0)
        let shared = open("\(remote)/small/g", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(shared, 0)
        let written = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for index in 0..<2 { _ = pwrite(shared, chunk, chunk.count, off_t(index << 20)) }
            written.signal()
        }
        written.wait()
        let closedByAnother = close(shared)
        let closeError = errno
        XCTAssertEqual(closedByAnother, -1, "a close from another thread than the writer's reports the failure")
        XCTAssertEqual(closeError, ENOSPC, String(cString: strerror(closeError)))
    }
}
