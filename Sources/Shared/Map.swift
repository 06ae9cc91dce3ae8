/// One node of the cluster as the map defines it.
public struct MapNode: Sendable, Equatable {
    /// The openMosix node id, 1...65535.
    public let id: UInt32
    /// The node's main address: an IPv4 address or a host name.
    public let address: String
    /// Further addresses of the node (`ID ADDRESS ALIAS` lines).
    public var aliases: [String]
    /// The map line that defined the node.
    public let line: Int

    public init(id: UInt32, address: String, aliases: [String] = [], line: Int) {
        self.id = id
        self.address = address
        self.aliases = aliases
        self.line = line
    }

    /// The main address followed by the aliases.
    public var addresses: [String] { [address] + aliases }
}

/// The cluster map (`/etc/openmosix.map`), expanded: one entry per node, sorted by id.
public struct ClusterMap: Sendable, Equatable {
    /// Where a map is looked for when no file is named, in this order.
    public static let searchPath = ["/etc/openmosix.map", "/etc/mosix.map", "/etc/hpc.map"]

    public let nodes: [MapNode]
    /// The file the map came from (or a description such as "<stdin>").
    public let source: String

    public init(nodes: [MapNode], source: String) {
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.source = source
    }

    /// The node with `id`, or nil.
    public func node(id: UInt32) -> MapNode? { nodes.first { $0.id == id } }

    /// The node that has `address` as its main address or an alias, or nil.
    public func node(address: String) -> MapNode? { nodes.first { $0.addresses.contains(address) } }

    /// The canonical text of the expanded map: one `ID ADDRESS [ALIAS...]` line per node.
    public var canonicalText: String {
        nodes.map { ([String($0.id), $0.address] + $0.aliases.sorted()).joined(separator: " ") + "\n" }.joined()
    }

    /// SHA-256 (hex) of `canonicalText`: equal for maps that expand to the same nodes,
    /// whatever their comments, spacing, ranges or line order.
    public var digest: String { hexEncode(sha256(Array(canonicalText.utf8))) }

    /// The first 12 hex digits of `digest`, for people.
    public var shortDigest: String { String(digest.prefix(12)) }

    /// Reads and parses the map at `path`, or the first map of `searchPath` that exists.
    /// - Throws: `MapError` with every problem found (file:line: what), or `ConfigError` when
    ///   no file is named and none of the search path exists.
    public static func load(path: String?) throws -> ClusterMap {
        if let path { return try MapParser.parse(text: try readTextFile(path), source: path) }
        for candidate in searchPath where fileExists(candidate) {
            return try MapParser.parse(text: try readTextFile(candidate), source: candidate)
        }
        throw ConfigError("no cluster map: none of \(searchPath.joined(separator: ", ")) exists (name one with --map)")
    }
}
