/// A configuration problem (a map, a key, an option) described for a person, naming the file
/// and line where there is one.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String

    public init(_ description: String) { self.description = description }
}
