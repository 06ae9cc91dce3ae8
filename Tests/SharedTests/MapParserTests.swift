import XCTest

@testable import Shared

final class MapParserTests: XCTestCase {
    private func parse(_ text: String) throws -> ClusterMap {
        try MapParser.parse(text: text, source: "test.map")
    }

    private func assertProblems(_ text: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: line) { error in
            guard let error = error as? MapError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(error.description.split(separator: "\n").map(String.init), expected, file: file, line: line)
        }
    }

    private func table(_ map: ClusterMap) -> [String] {
        map.nodes.map { "\($0.id) \($0.address)" + ($0.aliases.isEmpty ? "" : " " + $0.aliases.joined(separator: ",")) }
    }

    // MARK: The HOWTO's own examples

    func testTheHowtosFourNamedNodes() throws {
        let map = try parse("1 node1 1\n2 node2 1\n3 node3 1\n4 node4 1\n")
        XCTAssertEqual(table(map), ["1 node1", "2 node2", "3 node3", "4 node4"])
    }

    func testTheHowtosFourAddresses() throws {
        let map = try parse("1 192.168.1.1 1\n2 192.168.1.2 1\n3 192.168.1.3 1\n4 192.168.1.4 1\n")
        XCTAssertEqual(table(map), ["1 192.168.1.1", "2 192.168.1.2", "3 192.168.1.3", "4 192.168.1.4"])
    }

    func testTheHowtosRangeLineExpandsToTheSameFourNodes() throws {
        let range = try parse("1 192.168.1.1 4\n")
        let lines = try parse("1 192.168.1.1 1\n2 192.168.1.2 1\n3 192.168.1.3 1\n4 192.168.1.4 1\n")
        XCTAssertEqual(table(range), table(lines))
        XCTAssertEqual(range.digest, lines.digest, "the digest identifies the expanded map, not its spelling")
    }

    func testTheHowtosAliasGivesAGatewayNodeASecondAddress() throws {
        let map = try parse("""
            # a gateway node (4) with two network cards
            1 192.168.1.1 4
            4 192.168.10.1 ALIAS
            5 192.168.10.2 2
            2 10.0.0.2 0
            """)
        XCTAssertEqual(table(map), ["1 192.168.1.1", "2 192.168.1.2 10.0.0.2", "3 192.168.1.3", "4 192.168.1.4 192.168.10.1", "5 192.168.10.2", "6 192.168.10.3"])
        XCTAssertEqual(map.node(address: "192.168.10.1")?.id, 4)
    }

    func testCommentsBlankLinesTabsAndTrailingCommentsAreIgnored() throws {
        let map = try parse("# cluster\n\n\t1\t127.0.0.1\t3   # three local nodes\n   \n")
        XCTAssertEqual(table(map), ["1 127.0.0.1", "2 127.0.0.2", "3 127.0.0.3"])
    }

    func testTheDigestChangesWithTheNodes() throws {
        XCTAssertNotEqual(try parse("1 127.0.0.1 3\n").digest, try parse("1 127.0.0.1 4\n").digest)
        XCTAssertNotEqual(try parse("1 127.0.0.1 3\n").digest, try parse("2 127.0.0.1 3\n").digest)
        XCTAssertEqual(try parse("1 127.0.0.1 3\n").digest.count, 64)
    }

    // MARK: Every error class names file:line

    func testDuplicateAndOverlappingNodeIds() {
        assertProblems("1 10.0.0.1 1\n1 10.0.0.9 1\n", ["test.map:2: node 1 is defined twice: already on line 1"])
        assertProblems("1 10.0.0.1 4\n3 10.0.1.1 1\n", ["test.map:2: node 3 is defined twice: already on line 1"])
    }

    func testAnAddressGivenTwice() {
        assertProblems("1 10.0.0.1 1\n2 10.0.0.1 1\n", ["test.map:2: address 10.0.0.1 is given twice: already node 1 on line 1"])
        assertProblems("1 10.0.0.1 4\n9 10.0.0.3 1\n", ["test.map:2: address 10.0.0.3 is given twice: already node 3 on line 1"])
        assertProblems("1 10.0.0.1 2\n1 10.0.0.2 ALIAS\n", ["test.map:2: address 10.0.0.2 is given twice: already node 2 on line 1"])
    }

    func testARangeRunningPastTheLastByte() {
        assertProblems("10 10.0.0.250 10\n", ["test.map:1: range 10 from 10.0.0.250 runs past .255"])
        XCTAssertNoThrow(try parse("10 10.0.0.250 6\n"))
    }

    func testARangeRunningPastTheLastNodeId() {
        assertProblems("65535 10.0.0.1 2\n", ["test.map:1: range 2 from node 65535 runs past node id 65535"])
    }

    func testAnAliasOfAnUnknownNode() {
        assertProblems("1 10.0.0.1 1\n7 10.0.1.7 ALIAS\n", ["test.map:2: ALIAS for node 7, which the map does not define"])
    }

    func testAHostNameWithARangeAboveOne() {
        assertProblems("1 node1 4\n", ["test.map:1: host name `node1` takes RANGE 1, not 4: ranges count up the last byte of an IPv4 address"])
    }

    func testBadNodeIds() {
        assertProblems("0 10.0.0.1 1\nx 10.0.0.2 1\n70000 10.0.0.3 1\n-1 10.0.0.4 1\n", [
            "test.map:1: bad node id `0`: ids are whole numbers from 1 to 65535",
            "test.map:2: bad node id `x`: ids are whole numbers from 1 to 65535",
            "test.map:3: bad node id `70000`: ids are whole numbers from 1 to 65535",
            "test.map:4: bad node id `-1`: ids are whole numbers from 1 to 65535",
        ])
    }

    func testExtraAndMissingFields() {
        assertProblems("1 10.0.0.1 1 extra\n2 10.0.0.2\n", [
            "test.map:1: extra field `extra` after `ID ADDRESS RANGE`",
            "test.map:2: expected 3 fields `ID ADDRESS RANGE`, found 2: `2 10.0.0.2`",
        ])
    }

    func testBadAddressesAndRanges() {
        assertProblems("1 10.0.0.300 1\n2 bad_host! 1\n3 10.0.0.3 many\n4 10.0.0.4 -2\n", [
            "test.map:1: bad IPv4 address `10.0.0.300`",
            "test.map:2: bad address `bad_host!`: neither an IPv4 address nor a host name",
            "test.map:3: bad RANGE `many`: a count of nodes (1 or more), or ALIAS",
            "test.map:4: bad RANGE `-2`: a count of nodes (1 or more), or ALIAS",
        ])
    }

    func testAMapWithoutNodes() {
        assertProblems("# nothing here\n\n", ["test.map:0: the map defines no nodes"])
    }

    func testEveryProblemIsReportedNotJustTheFirst() {
        assertProblems("1 10.0.0.1 1\n1 10.0.0.2 1\n2 10.0.0.1 1\n", [
            "test.map:2: node 1 is defined twice: already on line 1",
            "test.map:3: address 10.0.0.1 is given twice: already node 1 on line 1",
        ])
    }

    func testLoadingAMissingFileNamesIt() {
        XCTAssertThrowsError(try ClusterMap.load(path: "/nonexistent/openmosix.map")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/openmosix.map: No such file or directory")
        }
    }

    func testLoopbackAddressesOfALocalClusterAreLocal() throws {
        let map = try parse("1 127.0.0.1 3\n4 192.0.2.1 1\n")
        XCTAssertEqual(map.localNodes().map(\.id), [1, 2, 3])
    }
}
