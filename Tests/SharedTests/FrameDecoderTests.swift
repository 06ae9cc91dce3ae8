import XCTest

@testable import Shared

final class FrameDecoderTests: XCTestCase {
    private func frames(_ payloads: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for payload in payloads { Frame.append(payload, to: &bytes) }
        return bytes
    }

    /// Feeds `bytes` as one read; returns the frames it completed.
    private func feed(_ decoder: inout FrameDecoder, _ bytes: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        try bytes.withUnsafeBytes { bytes in
            _ = try decoder.feed(bytes) { frame in
                out.append(Array(frame))
                return true
            }
        }
        return out
    }

    func testFramesFedOneByteAtATimeComeOutWhole() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 9, count: 300)]
        var decoder = FrameDecoder()
        var received: [[UInt8]] = []
        for byte in frames(payloads) {
            received += try feed(&decoder, [byte])
        }
        XCTAssertEqual(received, payloads)
        XCTAssertEqual(decoder.bufferedCount, 0)
    }

    func testManyFramesInOneReadAreAllReturned() throws {
        let payloads = (0..<1000).map { index in [UInt8](repeating: UInt8(index % 251), count: index % 17) }
        var decoder = FrameDecoder()
        XCTAssertEqual(try feed(&decoder, frames(payloads)), payloads)
    }

    func testFramesSplitAcrossReadsAnywhereComeOutWholeAndInOrder() throws {
        let payloads = (0..<200).map { index in [UInt8](repeating: UInt8(index % 251), count: (index * 37) % 300) }
        let bytes = frames(payloads)
        for readSize in [2, 3, 5, 64, 1000] {
            var decoder = FrameDecoder()
            var received: [[UInt8]] = []
            for start in stride(from: 0, to: bytes.count, by: readSize) {
                received += try feed(&decoder, Array(bytes[start..<min(start + readSize, bytes.count)]))
            }
            XCTAssertEqual(received, payloads, "reads of \(readSize) bytes")
            XCTAssertEqual(decoder.bufferedCount, 0)
        }
    }

    func testDeliveryStopsWhenTheReceiverSaysSoAndTheRestCanBeFedAgain() throws {
        var decoder = FrameDecoder()
        let bytes = frames([[1, 2], [3], [4]])
        var delivered: [[UInt8]] = []
        // A frame split across reads, then a stop after it: the rest is the caller's.
        try bytes.prefix(3).withUnsafeBytes { XCTAssertEqual(try decoder.feed($0) { _ in XCTFail("no frame is complete yet"); return true }, 3) }
        let rest = Array(bytes.dropFirst(3))
        let taken = try rest.withUnsafeBytes { rest in
            try decoder.feed(rest) { frame in
                delivered.append(Array(frame))
                return false
            }
        }
        XCTAssertEqual(delivered, [[1, 2]], "a receiver that stops takes no more frames")
        XCTAssertEqual(taken, 3, "the split frame's last 3 bytes were taken, no more")
        delivered += try feed(&decoder, Array(rest.dropFirst(taken)))
        XCTAssertEqual(delivered, [[1, 2], [3], [4]], "fed again, the rest comes out whole")
        // A stop inside one read, between whole frames.
        let second = try bytes.withUnsafeBytes { bytes in try decoder.feed(bytes) { _ in false } }
        XCTAssertEqual(second, 6, "the first frame (4 + 2 bytes) was taken")
    }

    func testAFrameCutShortWaitsForItsRest() throws {
        let bytes = frames([[1, 2, 3, 4, 5, 6]])
        var decoder = FrameDecoder()
        XCTAssertEqual(try feed(&decoder, Array(bytes[0..<2])), [], "half a header is not a frame")
        XCTAssertEqual(try feed(&decoder, Array(bytes[2..<7])), [], "a header and part of the body is not a frame")
        XCTAssertEqual(try feed(&decoder, Array(bytes[7...])), [[1, 2, 3, 4, 5, 6]])
    }

    func testAFrameAboveTheMaximumIsRefusedBeforeItsBodyArrives() {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        XCTAssertEqual(try feed(&decoder, [0, 0]), [])
        XCTAssertThrowsError(try feed(&decoder, [4, 1])) { error in  // announces 1025 bytes
            XCTAssertEqual(error as? FrameError, .oversize(length: 1025, limit: 1024))
            XCTAssertEqual("\(error)", "frame of 1025 bytes exceeds the maximum frame size of 1024 bytes")
        }
    }

    func testAFrameOfExactlyTheMaximumIsAccepted() throws {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        XCTAssertEqual(try feed(&decoder, frames([[UInt8](repeating: 1, count: 1024)])).map(\.count), [1024])
    }

    func testGarbageBytesEitherAnnounceAnOversizeFrameOrYieldUnparseableEnvelopes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var decoder = FrameDecoder(maxFrameSize: 4096)
            let garbage = (0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) }
            do {
                try garbage.withUnsafeBytes { bytes in
                    _ = try decoder.feed(bytes) { frame in
                        // A frame cut from garbage must never crash the envelope parser.
                        _ = try? Envelope(serialized: frame)
                        return true
                    }
                }
            } catch {
                XCTAssertTrue(error is FrameError)
            }
        }
    }

    func testNothingStaysBufferedOnceEveryFrameIsComplete() throws {
        var decoder = FrameDecoder()
        for round in 0..<100 {
            let bytes = frames([[UInt8](repeating: UInt8(round), count: 10_000)])
            XCTAssertEqual(try feed(&decoder, Array(bytes[..<4_000])), [])
            XCTAssertEqual(decoder.bufferedCount, 4_000)
            XCTAssertEqual(try feed(&decoder, Array(bytes[4_000...])), [[UInt8](repeating: UInt8(round), count: 10_000)])
        }
        XCTAssertEqual(decoder.bufferedCount, 0)
    }
}
