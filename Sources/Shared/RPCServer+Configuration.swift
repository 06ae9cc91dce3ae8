/// The types a server's users name: its handlers, where they run, and its settings.
extension RPCServer {
    /// A method implementation: the request's body in, the response's body out.
    /// Throw `RPCError` to answer with a status; any other error answers INTERNAL.
    public typealias Handler = @Sendable (RPCRequest) async throws -> [UInt8]
    /// A method implementation that answers at once on the loop thread: it must neither block
    /// nor wait. Throws as `Handler`.
    public typealias ImmediateHandler = @Sendable (RPCRequest) throws -> [UInt8]

    /// Where a handler runs.
    public enum Placement: Sendable {
        /// On the loop thread: must not block.
        case loop
        /// On Swift's global concurrent executor.
        case pool
    }

    /// Settings of a server.
    public struct Configuration: Sendable {
        /// Largest accepted frame; a larger one is refused and its connection closed.
        public var maxFrameSize: Int
        /// Checks TCP envelopes; nil only for tests and benchmarks that measure without it.
        public var authenticator: Authenticator?
        /// TCP peers must come from one of these addresses (the map's); nil accepts any.
        public var allowedAddresses: Set<String>?
        /// A name for logs and errors ("discovery").
        public var name: String
        /// Where calls are counted per method and status, with their durations.
        public var metrics: MetricsRegistry?
        /// Connections a local user other than root may hold at once; more are refused with
        /// RESOURCE_EXHAUSTED (a user's tools need a few).
        public var maxConnectionsPerUser = 256
        /// Connections one TCP peer address may hold at once once they signed a call (a node's
        /// services and its mount's threads need a few dozen).
        public var maxConnectionsPerAddress = 1_024
        /// TCP connections of one address that have signed no call yet; one more closes the oldest.
        public var maxUnsignedConnectionsPerAddress = 64
        /// How long a TCP connection may go without signing a call (when calls are checked).
        public var signInTimeout: Duration = .seconds(10)
        /// How long a frame may take to arrive whole, and a peer may leave all our answers
        /// unread while we hold back its requests; then the connection is closed.
        public var stalledTimeout: Duration = .seconds(30)

        public init(name: String, maxFrameSize: Int = Frame.defaultMaxSize, authenticator: Authenticator?, allowedAddresses: Set<String>?) {
            self.name = name
            self.maxFrameSize = maxFrameSize
            self.authenticator = authenticator
            self.allowedAddresses = allowedAddresses
        }
    }
}
