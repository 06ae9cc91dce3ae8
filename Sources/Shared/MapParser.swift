/// Everything wrong with a map, one problem per line, each naming file:line.
public struct MapError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Problem: Sendable, Equatable {
        public let line: Int
        public let message: String
    }

    public let source: String
    public let problems: [Problem]

    public var description: String {
        problems.map { "\(source):\($0.line): \($0.message)" }.joined(separator: "\n")
    }
}

/// Parses the openMosix map grammar:
///
///     # comment
///     ID ADDRESS RANGE     # RANGE nodes ID... at ADDRESS, ADDRESS+1, ... (last byte counts up)
///     ID ADDRESS ALIAS     # another address of node ID (0 means the same as ALIAS)
///
/// Host names are allowed with RANGE 1 only.
public enum MapParser {
    /// The largest node id.
    public static let maxNodeID = 65535

    /// Parses `text`; `source` names the file in errors.
    /// - Throws: `MapError` listing every problem found.
    public static func parse(text: String, source: String) throws -> ClusterMap {
        var problems: [MapError.Problem] = []
        var nodes: [UInt32: MapNode] = [:]
        var addressOwner: [String: (id: UInt32, line: Int)] = [:]
        var aliasLines: [(line: Int, id: UInt32, address: String)] = []

        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            func problem(_ message: String) { problems.append(.init(line: line, message: message)) }
            let content = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count >= 3 else {
                problem("expected 3 fields `ID ADDRESS RANGE`, found \(fields.count): `\(fields.joined(separator: " "))`")
                continue
            }
            guard fields.count == 3 else {
                problem("extra field `\(fields[3...].joined(separator: " "))` after `ID ADDRESS RANGE`")
                continue
            }
            guard let id = UInt32(fields[0]), id >= 1, id <= maxNodeID else {
                problem("bad node id `\(fields[0])`: ids are whole numbers from 1 to \(maxNodeID)")
                continue
            }
            let address = fields[1]
            let ipv4 = IPv4Address(address)
            if ipv4 == nil {
                if address.allSatisfy({ $0.isNumber || $0 == "." }) {
                    problem("bad IPv4 address `\(address)`")
                    continue
                }
                guard isValidHostName(address) else {
                    problem("bad address `\(address)`: neither an IPv4 address nor a host name")
                    continue
                }
            }
            let rangeField = fields[2]
            if rangeField.uppercased() == "ALIAS" || rangeField == "0" {
                aliasLines.append((line, id, address))
                continue
            }
            guard let range = Int(rangeField), range >= 1 else {
                problem("bad RANGE `\(rangeField)`: a count of nodes (1 or more), or ALIAS")
                continue
            }
            guard range == 1 || ipv4 != nil else {
                problem("host name `\(address)` takes RANGE 1, not \(range): ranges count up the last byte of an IPv4 address")
                continue
            }
            if let ipv4, Int(ipv4.octets.3) + range - 1 > 255 {
                problem("range \(range) from \(address) runs past .255")
                continue
            }
            if Int(id) + range - 1 > maxNodeID {
                problem("range \(range) from node \(id) runs past node id \(maxNodeID)")
                continue
            }
            for offset in 0..<range {
                let nodeID = id + UInt32(offset)
                let nodeAddress = ipv4.map { $0.adding(offset).description } ?? address
                if let existing = nodes[nodeID] {
                    problem("node \(nodeID) is defined twice: already on line \(existing.line)")
                    continue
                }
                if let owner = addressOwner[nodeAddress] {
                    problem("address \(nodeAddress) is given twice: already node \(owner.id) on line \(owner.line)")
                    continue
                }
                nodes[nodeID] = MapNode(id: nodeID, address: nodeAddress, line: line)
                addressOwner[nodeAddress] = (nodeID, line)
            }
        }

        for alias in aliasLines {
            guard nodes[alias.id] != nil else {
                problems.append(.init(line: alias.line, message: "ALIAS for node \(alias.id), which the map does not define"))
                continue
            }
            let normalized = IPv4Address(alias.address)?.description ?? alias.address
            if let owner = addressOwner[normalized] {
                problems.append(.init(line: alias.line, message: "address \(normalized) is given twice: already node \(owner.id) on line \(owner.line)"))
                continue
            }
            nodes[alias.id]!.aliases.append(normalized)
            addressOwner[normalized] = (alias.id, alias.line)
        }

        if problems.isEmpty && nodes.isEmpty {
            problems.append(.init(line: 0, message: "the map defines no nodes"))
        }
        guard problems.isEmpty else {
            throw MapError(source: source, problems: problems.sorted { $0.line < $1.line })
        }
        return ClusterMap(nodes: Array(nodes.values), source: source)
    }

    /// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
    static func isValidHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
        }
    }
}

/// An IPv4 address in dotted-quad form.
public struct IPv4Address: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let octets: (UInt8, UInt8, UInt8, UInt8)

    /// Parses `a.b.c.d` with each part 0...255 in plain decimal; nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var values: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = UInt8(part), part.count == 1 || part.first != "0"
            else { return nil }
            values.append(value)
        }
        octets = (values[0], values[1], values[2], values[3])
    }

    private init(octets: (UInt8, UInt8, UInt8, UInt8)) { self.octets = octets }

    /// The address whose last byte is `offset` higher. - Precondition: it stays within .255.
    public func adding(_ offset: Int) -> IPv4Address {
        IPv4Address(octets: (octets.0, octets.1, octets.2, UInt8(Int(octets.3) + offset)))
    }

    public var description: String { "\(octets.0).\(octets.1).\(octets.2).\(octets.3)" }

    public static func == (a: IPv4Address, b: IPv4Address) -> Bool { a.description == b.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }
}
