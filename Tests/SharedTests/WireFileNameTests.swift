import Shared
import XCTest

/// File names travel as UTF-8 strings whatever their bytes, and come back byte for byte.
final class WireFileNameTests: XCTestCase {
    private func wire(_ bytes: [UInt8]) -> String { WireFileName.decode(bytes) }

    func testUTF8NamesTravelAsTheyAre() {
        for name in ["plain.txt", "", "dir/sub/file", "café", "日本語のファイル", "emoji 🚀", "\u{EF7F}\u{F000}"] {
            XCTAssertEqual(wire(Array(name.utf8)), name)
            XCTAssertEqual(WireFileName.bytes(name), Array(name.utf8))
        }
    }

    func testBytesThatAreNoUTF8TravelAsPrivateUseCharacters() {
        // Latin-1 "café": E9 is no UTF-8 on its own.
        XCTAssertEqual(wire([0x63, 0x61, 0x66, 0xE9]), "caf\u{EFE9}")
        // A sequence cut short, an overlong "/", a UTF-16 surrogate, a lone continuation byte.
        XCTAssertEqual(wire([0xE2, 0x82]), "\u{EFE2}\u{EF82}")
        XCTAssertEqual(wire([0xC0, 0xAF]), "\u{EFC0}\u{EFAF}")
        XCTAssertEqual(wire([0xED, 0xA0, 0x80]), "\u{EFED}\u{EFA0}\u{EF80}")
        XCTAssertEqual(wire([0x61, 0x80, 0x62]), "a\u{EF80}b")
        // Valid UTF-8 around the bad bytes stays as it is.
        XCTAssertEqual(wire(Array("é".utf8) + [0xFF] + Array("日".utf8)), "é\u{EFFF}日")
    }

    func testANamesOwnEscapeCharactersTravelEscapedSoEveryNameComesBack() {
        // U+EF85 is EE BE 85: carried byte by byte, or it would read back as the byte 0x85.
        XCTAssertEqual(wire([0xEE, 0xBE, 0x85]), "\u{EFEE}\u{EFBE}\u{EF85}")
        XCTAssertEqual(WireFileName.bytes("\u{EFEE}\u{EFBE}\u{EF85}"), [0xEE, 0xBE, 0x85])
        XCTAssertEqual(WireFileName.bytes("caf\u{EFE9}"), [0x63, 0x61, 0x66, 0xE9])
        XCTAssertEqual(WireFileName.cString("a\u{EF80}"), [0x61, CChar(bitPattern: 0x80), 0])
    }

    func testAnyBytesComeBackAsTheyWere() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...24, using: &generator)
            // Weighted toward the bytes that matter: high bytes and the escapes' own lead bytes.
            let bytes = (0..<length).map { _ -> UInt8 in
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: return [0xEE, 0xBE, 0xBF, 0xE2, 0xC3, 0xF0][Int.random(in: 0..<6, using: &generator)]
                case 1: return UInt8.random(in: 0x80...0xFF, using: &generator)
                default: return UInt8.random(in: 1...0xFF, using: &generator)
                }
            }
            let name = wire(bytes)
            XCTAssertEqual(WireFileName.bytes(name), bytes, "\(bytes) -> \(name.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }

    func testOneNameHasOneWireFormAndNoOther() {
        XCTAssertTrue(WireFileName.isCanonical("caf\u{EFE9}"))
        XCTAssertTrue(WireFileName.isCanonical("x\u{EFEE}\u{EFBE}\u{EF85}y"))
        XCTAssertTrue(WireFileName.isCanonical("plain/path"))
        // A lone escape stands for a byte that is no UTF-8 on its own: that is its wire form.
        XCTAssertTrue(WireFileName.isCanonical("x\u{EF85}y"))
        // The bytes of "données" written as escapes: their wire form is "données" itself.
        XCTAssertFalse(WireFileName.isCanonical("donn\u{EFC3}\u{EFA9}es"))
        XCTAssertFalse(WireFileName.isCanonical("cut\u{0}short"))
    }
}
