import Foundation
import Shared
import XCTest

/// One file through several nodes' /mfs mounts at once: appends land whole, as O_APPEND writes
/// do on the disk, and what one node wrote and closed is what another opens next (close-to-open,
/// as NFS), whatever the kernel and the mount cached of the file before.
final class MfsAcrossNodesEndToEndTests: XCTestCase {
    /// Record `index` of `writer`: "writer index size:", then `size` bytes of filler, then a
    /// newline. Sizes run from 40 bytes to 3 KiB (many cross a page boundary), with a record of
    /// 200 KB every 100.
    private static func record(writer: Int, index: Int) -> [UInt8] {
        let size = index % 100 == 99 ? 200_000 : 40 + (index &* 7_919 &+ writer &* 104_729) % 3_000
        return Array("\(writer) \(index) \(size):".utf8) + [UInt8](repeating: UInt8(ascii: "a") + UInt8(writer), count: size) + [UInt8(ascii: "\n")]
    }

    /// The writer and index a record starting `bytes` names, nil when they start no record.
    private static func header(_ bytes: ArraySlice<UInt8>) -> (writer: Int, index: Int)? {
        guard let colon = bytes.prefix(40).firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let fields = String(decoding: bytes[..<colon], as: UTF8.self).split(separator: " ").compactMap { Int($0) }
        return fields.count == 3 ? (fields[0], fields[1]) : nil
    }

    /// A 2-node cluster whose nodes both mount /mfs, and a fresh directory on the disk.
    private func mountedOnBothNodes(subnet: Int) async throws -> (cluster: DiscoveryCluster, disk: String) {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: subnet, nodes: 2)
        for node in 1...2 {
            let listed = await cluster.waitForMount(at: "\(cluster.dir)/node-\(node)/mfs", nodes: 2)
            XCTAssertTrue(listed, "node \(node)'s /mfs lists nodes 1 and 2")
        }
        let disk = "\(cluster.dir)/shared"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        return (cluster, disk)
    }

    /// The whole of the file open as `fd`, and the size fstat gave first.
    private static func readAll(_ fd: Int32) -> (bytes: [UInt8], size: Int) {
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(info.st_size) : -1
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return (bytes, size)
    }

    func testAppendsThroughSeveralMountsLandWhole() async throws {
        let (cluster, disk) = try await mountedOnBothNodes(subnet: 107)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }

        // Two writers through each node's mount, to a file of node 2.
        let (writers, records) = (4, 1_500)
        let failures = NSLock()
        nonisolated(unsafe) var failed: [String] = []
        DispatchQueue.concurrentPerform(iterations: writers) { writer in
            let path = "\(cluster.dir)/node-\(writer % 2 + 1)/mfs/2\(disk)/log"
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
            guard fd >= 0 else {
                failures.withLock { failed.append("open \(path): \(String(cString: strerror(errno)))") }
                return
            }
            for index in 0..<records {
                let record = Self.record(writer: writer, index: index)
                let written = record.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                guard written == record.count else {
                    failures.withLock { failed.append("writer \(writer), record \(index): wrote \(written) of \(record.count) bytes (\(String(cString: strerror(errno))))") }
                    break
                }
            }
            if close(fd) != 0 { failures.withLock { failed.append("close \(path): \(String(cString: strerror(errno)))") } }
        }
        XCTAssertEqual(failed, [])

        // The file on the disk is the records, each whole, each writer's in its order.
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(disk)/log")))
        var next = [Int](repeating: 0, count: writers)
        var position = 0
        while position < data.count {
            guard let found = Self.header(data[position...]), (0..<writers).contains(found.writer) else {
                XCTFail("no record header at byte \(position): \(String(decoding: data[position...].prefix(40), as: UTF8.self).debugDescription)")
                break
            }
            let (writer, index) = found
            let expected = Self.record(writer: writer, index: index)
            guard data[position...].starts(with: expected) else {
                XCTFail("record \(index) of writer \(writer) at byte \(position) is torn: another append landed inside it")
                break
            }
            XCTAssertEqual(index, next[writer], "writer \(writer)'s records in order")
            next[writer] = index + 1
            position += expected.count
        }
        XCTAssertEqual(next, [Int](repeating: records, count: writers), "every record of every writer is there")

        // Each mount reads the file as the disk holds it.
        for node in 1...2 {
            let through = try Data(contentsOf: URL(fileURLWithPath: "\(cluster.dir)/node-\(node)/mfs/2\(disk)/log"))
            XCTAssertTrue([UInt8](through) == data, "node \(node)'s mount reads the disk's \(data.count) bytes (read \(through.count))")
        }
    }

    func testWhatOneNodeWroteAndClosedIsWhatAnotherOpensNext() async throws {
        let (cluster, disk) = try await mountedOnBothNodes(subnet: 108)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let (writer, reader) = ("\(cluster.dir)/node-1/mfs/2\(disk)", "\(cluster.dir)/node-2/mfs/2\(disk)")

        // Each round, node 1 writes a new version (growing and shrinking by turns), saved over
        // the old one by rename or rewritten in place, and closes it; node 2, which read the
        // version before, opens it at once.
        for round in 0..<200 {
            let version = Array(String(format: "%06d", round).utf8) + [UInt8](repeating: UInt8(ascii: "a") + UInt8(round % 26), count: round % 2 == 0 ? 100 + round : 5_000 + round)
            let name = round % 4 < 2 ? "renamed" : "rewritten"
            let temporary = name == "renamed" ? "\(writer)/\(name).new" : "\(writer)/\(name)"
            let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            XCTAssertEqual(write(out, version, version.count), version.count)
            XCTAssertEqual(close(out), 0)
            if name == "renamed" { XCTAssertEqual(rename(temporary, "\(writer)/\(name)"), 0) }
            let fd = open("\(reader)/\(name)", O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            let (bytes, size) = Self.readAll(fd)
            close(fd)
            XCTAssertEqual(size, version.count, "round \(round) (\(name)): fstat on node 2 gives the size node 1 wrote")
            guard bytes == version else {
                XCTFail("round \(round) (\(name)): node 2 read \(bytes.count) bytes starting \(String(decoding: bytes.prefix(6), as: UTF8.self)), not the \(version.count) node 1 wrote")
                break
            }
        }

        // Versions saved by rename on node 1 while node 2 reads on: each read is one whole version.
        let deadline = monotonicNs() + 3_000_000_000
        let saved = DispatchSemaphore(value: 0)
        let saver = Thread {
            defer { saved.signal() }
            var round = 0
            while monotonicNs() < deadline {
                let version = Array(String(format: "%08d", round).utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: round % 9_000) + Array("END".utf8)
                let out = open("\(writer)/saved.new", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                _ = write(out, version, version.count)
                close(out)
                rename("\(writer)/saved.new", "\(writer)/saved")
                round += 1
            }
        }
        saver.start()
        var (reads, wrong) = (0, [String]())
        while monotonicNs() < deadline {
            let fd = open("\(reader)/saved", O_RDONLY)
            guard fd >= 0 else { continue }
            let (bytes, _) = Self.readAll(fd)
            close(fd)
            reads += 1
            let round = Int(String(decoding: bytes.prefix(8), as: UTF8.self)) ?? -1
            if round < 0 || bytes.count != 8 + round % 9_000 + 3 || !bytes.suffix(3).elementsEqual("END".utf8) {
                wrong.append("\(bytes.count) bytes starting \(String(decoding: bytes.prefix(8), as: UTF8.self))")
            }
        }
        saved.wait()
        XCTAssertGreaterThan(reads, 10)
        XCTAssertEqual(wrong, [], "of \(reads) reads on node 2, these were no whole version")
    }

    func testAFileRemovedThroughOneNodeIsMissingAndMadeAnewAtOnceThroughAnother() async throws {
        let (cluster, disk) = try await mountedOnBothNodes(subnet: 109)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let (remover, opener) = ("\(cluster.dir)/node-1/mfs/2\(disk)", "\(cluster.dir)/node-2/mfs/2\(disk)")
        var info = stat()
        // Each round node 2 looks at the file (its kernel keeps the name for a second), then it
        // is removed through node 1's mount or on its node's disk, and node 2 opens it at once.
        for round in 0..<60 {
            try Data("\(round)".utf8).write(to: URL(fileURLWithPath: "\(disk)/file"))
            XCTAssertEqual(stat("\(opener)/file", &info), 0)
            XCTAssertEqual(round % 2 == 0 ? unlink("\(remover)/file") : unlink("\(disk)/file"), 0)
            let created = round % 3 != 2
            let fd = created ? open("\(opener)/file", O_WRONLY | O_CREAT, 0o644) : open("\(opener)/file", O_RDONLY)
            let failure = fd < 0 ? errno : 0
            if fd >= 0 { close(fd) }
            XCTAssertEqual(
                failure, created ? 0 : ENOENT,
                "round \(round): \(created ? "O_CREAT made the file anew" : "a plain open found it missing"): \(String(cString: strerror(failure)))")
        }
    }
}
