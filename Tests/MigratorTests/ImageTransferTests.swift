import Foundation
import Shared
import XCTest

@testable import Migrator

/// The target's checks on incoming image chunks, and chunks' wire form.
final class ImageTransferTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "omx-images-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() {
        removeTree(dir)
    }

    private func begin(_ files: [ImageFile], transfer: String = "1.1-7") -> TransferBegin {
        var job = Job()
        job.id = "1.1"
        return TransferBegin(transfer: transfer, job: job, files: files, source: 1)
    }

    private func chunk(_ transfer: String, file: UInt32, offset: UInt64, _ data: [UInt8], crc: UInt32? = nil) -> [UInt8] {
        let right = data.withUnsafeBufferPointer { crc32($0) }
        return TransferChunk(transfer: transfer, file: file, offset: offset, data: data, crc32: crc ?? right).wire()
    }

    private func crc32(_ data: UnsafeBufferPointer<UInt8>) -> UInt32 {
        // The bitwise CRC-32 (ISO-HDLC) the target must agree with.
        var crc: UInt32 = 0xffff_ffff
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
        }
        return ~crc
    }

    func testChunksInAnyOrderRebuildTheFilesAndCompleteTheTransfer() throws {
        let transfers = IncomingTransfers()
        let receiver = try ImageReceiver(begin: begin([ImageFile(path: "pages-1.img", size: 6), ImageFile(path: "sub/core.img", size: 2)]), directory: dir)
        XCTAssertTrue(transfers.add(receiver))
        XCTAssertFalse(transfers.add(receiver), "a transfer id is taken once")
        XCTAssertEqual(try transfers.write(chunk("1.1-7", file: 0, offset: 3, [4, 5, 6]), node: 2), "1.1-7")
        XCTAssertNotNil(receiver.missing)
        _ = try transfers.write(chunk("1.1-7", file: 1, offset: 0, [9, 9]), node: 2)
        _ = try transfers.write(chunk("1.1-7", file: 0, offset: 0, [1, 2, 3]), node: 2)
        XCTAssertNil(receiver.missing, "every byte arrived")
        transfers.remove("1.1-7")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/pages-1.img")), Data([1, 2, 3, 4, 5, 6]))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/sub/core.img")), Data([9, 9]))
    }

    func testACorruptedChunkDropsTheTransferAndLaterChunksSayWhy() throws {
        let transfers = IncomingTransfers()
        XCTAssertTrue(transfers.add(try ImageReceiver(begin: begin([ImageFile(path: "pages-1.img", size: 8)]), directory: dir)))
        XCTAssertThrowsError(try transfers.write(chunk("1.1-7", file: 0, offset: 0, [1, 2, 3, 4], crc: 12345), node: 2)) { error in
            XCTAssertEqual((error as? RPCError)?.status, .dataLoss)
            XCTAssertTrue("\(error)".contains("checksum mismatch in pages-1.img at offset 0"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "the dropped transfer's files are gone")
        XCTAssertThrowsError(try transfers.write(chunk("1.1-7", file: 0, offset: 4, [5, 6, 7, 8]), node: 2)) { error in
            XCTAssertEqual((error as? RPCError)?.status, .aborted)
            XCTAssertTrue("\(error)".contains("node 2 dropped transfer 1.1-7: Migrator.Chunk: checksum mismatch"), "\(error)")
        }
        XCTAssertThrowsError(try transfers.write(chunk("9.9-1", file: 0, offset: 0, [1]), node: 2)) { error in
            XCTAssertEqual((error as? RPCError)?.status, .notFound)
        }
    }

    func testChunksOutsideTheAnnouncedFilesAndPathsOutsideTheDirectoryAreRefused() throws {
        let receiver = try ImageReceiver(begin: begin([ImageFile(path: "pages-1.img", size: 4)]), directory: dir)
        let transfers = IncomingTransfers()
        XCTAssertTrue(transfers.add(receiver))
        XCTAssertThrowsError(try transfers.write(chunk("1.1-7", file: 0, offset: 2, [1, 2, 3]), node: 2)) { error in
            XCTAssertTrue("\(error)".contains("run past its size 4"), "\(error)")
        }
        XCTAssertTrue(transfers.add(try ImageReceiver(begin: begin([ImageFile(path: "a.img", size: 4)], transfer: "t2"), directory: dir + "-2")))
        XCTAssertThrowsError(try transfers.write(chunk("t2", file: 3, offset: 0, [1]), node: 2)) { error in
            XCTAssertTrue("\(error)".contains("has no file #3"), "\(error)")
        }
        removeTree(dir + "-2")
        for path in ["../escape.img", "/etc/passwd", "sub/../../x"] {
            XCTAssertThrowsError(try ImageReceiver(begin: begin([ImageFile(path: path, size: 1)]), directory: dir + "-3")) { error in
                XCTAssertTrue("\(error)".contains("leaves the image directory"), "\(path): \(error)")
            }
        }
        removeTree(dir + "-3")
    }

    func testAChunkInFlightWhenItsTransferIsDroppedWritesIntoItsOwnFile() throws {
        let transfers = IncomingTransfers()
        let receiver = try ImageReceiver(begin: begin([ImageFile(path: "pages-1.img", size: 4)]), directory: dir)
        XCTAssertTrue(transfers.add(receiver))
        // The chunk's writer took the receiver just before the transfer went silent too long.
        XCTAssertEqual(transfers.dropIdle(longerThan: 0).map(\.transfer), ["1.1-7"])
        // Descriptors the process opens meanwhile get new numbers, not the transfer's.
        let other = open("/dev/null", O_WRONLY)
        defer { close(other) }
        try TransferChunk.decode(chunk("1.1-7", file: 0, offset: 0, [7, 7, 7, 7])) { header, data in try receiver.write(header, data) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/pages-1.img")), Data([7, 7, 7, 7]), "the chunk landed in its own file")
    }

    func testATransferThatFellSilentIsDroppedAndAFailedStartLeavesNothing() throws {
        let transfers = IncomingTransfers()
        XCTAssertTrue(transfers.add(try ImageReceiver(begin: begin([ImageFile(path: "pages-1.img", size: 8)]), directory: dir)))
        XCTAssertTrue(transfers.dropIdle(longerThan: 60_000_000_000).isEmpty, "a transfer that just began is not idle")
        let dropped = transfers.dropIdle(longerThan: 0)
        XCTAssertEqual(dropped.map(\.transfer), ["1.1-7"])
        XCTAssertThrowsError(try transfers.write(chunk("1.1-7", file: 0, offset: 0, [1, 2, 3, 4]), node: 2)) { error in
            XCTAssertEqual((error as? RPCError)?.status, .aborted)
            XCTAssertTrue("\(error)".contains("no chunk arrived for 0 s"), "\(error)")
        }

        // A file that cannot be created (its directory is a file): no image directory is left.
        let blocked = dir + "-4"
        XCTAssertThrowsError(try ImageReceiver(begin: begin([ImageFile(path: "a.img", size: 1), ImageFile(path: "a.img/b.img", size: 1)]), directory: blocked))
        XCTAssertFalse(FileManager.default.fileExists(atPath: blocked), "the half-made image directory is gone")
    }

    func testAChunkSurvivesTheWireWithItsDataInPlace() throws {
        let data: [UInt8] = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let original = TransferChunk(transfer: "2.3-9", file: 4, offset: 1 << 33, data: data, crc32: 0xdead_beef)
        XCTAssertEqual(try TransferChunk(wire: original.wire()), original)
        let seen = try TransferChunk.decode(original.wire()) { header, bytes in (header.offset, header.crc32, Array(bytes)) }
        XCTAssertEqual(seen.0, 1 << 33)
        XCTAssertEqual(seen.1, 0xdead_beef)
        XCTAssertEqual(seen.2, data)
        XCTAssertThrowsError(try TransferChunk(wire: [0xff, 0xff, 0xff])) { error in
            XCTAssertTrue("\(error)".contains("malformed omx.migrator.TransferChunk"), "\(error)")
        }
    }
}
