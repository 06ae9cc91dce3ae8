import XCTest

@testable import Shared

final class FrameDecoderTests: XCTestCase {
    private func frames(_ payloads: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for payload in payloads { Frame.append(payload, to: &bytes) }
        return bytes
    }

    private func drain(_ decoder: inout FrameDecoder) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let frame = try decoder.next() { out.append(frame) }
        return out
    }

    func testFramesFedOneByteAtATimeComeOutWhole() throws {
        let payloads: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 9, count: 300)]
        var decoder = FrameDecoder()
        var received: [[UInt8]] = []
        for byte in frames(payloads) {
            decoder.append([byte])
            received += try drain(&decoder)
        }
        XCTAssertEqual(received, payloads)
        XCTAssertEqual(decoder.bufferedCount, 0)
    }

    func testManyFramesInOneReadAreAllReturned() throws {
        let payloads = (0..<1000).map { index in [UInt8](repeating: UInt8(index % 251), count: index % 17) }
        var decoder = FrameDecoder()
        decoder.append(frames(payloads))
        XCTAssertEqual(try drain(&decoder), payloads)
    }

    func testAFrameCutShortWaitsForItsRest() throws {
        let bytes = frames([[1, 2, 3, 4, 5, 6]])
        var decoder = FrameDecoder()
        decoder.append(Array(bytes[0..<2]))
        XCTAssertNil(try decoder.next(), "half a header is not a frame")
        decoder.append(Array(bytes[2..<7]))
        XCTAssertNil(try decoder.next(), "a header and part of the body is not a frame")
        decoder.append(Array(bytes[7...]))
        XCTAssertEqual(try decoder.next(), [1, 2, 3, 4, 5, 6])
    }

    func testAFrameAboveTheMaximumIsRefusedBeforeItsBodyArrives() {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        decoder.append([0, 0, 4, 1])  // announces 1025 bytes
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual(error as? FrameError, .oversize(length: 1025, limit: 1024))
            XCTAssertEqual("\(error)", "frame of 1025 bytes exceeds the maximum frame size of 1024 bytes")
        }
    }

    func testAFrameOfExactlyTheMaximumIsAccepted() throws {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        decoder.append(frames([[UInt8](repeating: 1, count: 1024)]))
        XCTAssertEqual(try decoder.next()?.count, 1024)
    }

    func testGarbageBytesEitherAnnounceAnOversizeFrameOrYieldUnparseableEnvelopes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var decoder = FrameDecoder(maxFrameSize: 4096)
            decoder.append((0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) })
            do {
                while let frame = try decoder.next() {
                    // A frame cut from garbage must never crash the envelope parser.
                    _ = try? Envelope(serialized: frame)
                }
            } catch {
                XCTAssertTrue(error is FrameError)
            }
        }
    }

    func testTheBufferIsCompactedAfterLargeConsumption() throws {
        var decoder = FrameDecoder()
        for round in 0..<100 {
            decoder.append(frames([[UInt8](repeating: UInt8(round), count: 10_000)]))
            XCTAssertEqual(try decoder.next(), [UInt8](repeating: UInt8(round), count: 10_000))
        }
        XCTAssertEqual(decoder.bufferedCount, 0)
    }
}
