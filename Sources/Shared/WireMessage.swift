/// A Swift value that travels as one protobuf message of the contract in `proto/`.
public protocol WireMessage: Sendable {
    /// Parses the message. - Throws: `RPCError` (INVALID_ARGUMENT) naming the message type.
    init(wire bytes: [UInt8]) throws
    /// The serialized message.
    func wire() -> [UInt8]
}
