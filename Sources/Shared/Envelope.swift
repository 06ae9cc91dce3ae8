/// The proof of a TCP envelope's origin (`omx.Auth`).
public struct EnvelopeAuth: Sendable, Equatable {
    public var nodeID: UInt32
    public var timestampMs: UInt64
    public var nonce: [UInt8]
    public var mac: [UInt8]
    public var scheme: AuthScheme

    public init(nodeID: UInt32, timestampMs: UInt64, nonce: [UInt8], mac: [UInt8] = [], scheme: AuthScheme = .clusterHMACSHA256) {
        self.nodeID = nodeID
        self.timestampMs = timestampMs
        self.nonce = nonce
        self.mac = mac
        self.scheme = scheme
    }
}

/// One message on the wire (`omx.Envelope`): a request or a response. `Envelope+Wire.swift`
/// packs and parses it, `Envelope+Signing.swift` says what its MAC covers.
public struct Envelope: Sendable, Equatable {
    public enum Kind: UInt32, Sendable {
        case request = 0
        case response = 1
    }

    public var callID: UInt64
    public var kind: Kind
    public var method: String
    public var body: [UInt8]
    public var status: StatusCode
    public var error: String
    /// Requests: how long the caller waits, in milliseconds (0 = no deadline).
    public var deadlineMs: UInt32
    public var auth: EnvelopeAuth?

    public init(
        callID: UInt64, kind: Kind, method: String, body: [UInt8] = [], status: StatusCode = .ok,
        error: String = "", deadlineMs: UInt32 = 0, auth: EnvelopeAuth? = nil
    ) {
        self.callID = callID
        self.kind = kind
        self.method = method
        self.body = body
        self.status = status
        self.error = error
        self.deadlineMs = deadlineMs
        self.auth = auth
    }

    /// A failed response to call `callID` of `method`.
    public static func failure(callID: UInt64, method: String, _ error: RPCError) -> Envelope {
        Envelope(callID: callID, kind: .response, method: method, status: error.status, error: error.message)
    }
}
