/// The outcome of a call, as `omx.StatusCode` in `proto/common.proto` numbers it.
public enum StatusCode: UInt32, Sendable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    /// The proto enum name, e.g. `DEADLINE_EXCEEDED`.
    public var description: String {
        switch self {
        case .ok: return "OK"
        case .cancelled: return "CANCELLED"
        case .unknown: return "UNKNOWN"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .deadlineExceeded: return "DEADLINE_EXCEEDED"
        case .notFound: return "NOT_FOUND"
        case .alreadyExists: return "ALREADY_EXISTS"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .resourceExhausted: return "RESOURCE_EXHAUSTED"
        case .failedPrecondition: return "FAILED_PRECONDITION"
        case .aborted: return "ABORTED"
        case .outOfRange: return "OUT_OF_RANGE"
        case .unimplemented: return "UNIMPLEMENTED"
        case .internal: return "INTERNAL"
        case .unavailable: return "UNAVAILABLE"
        case .dataLoss: return "DATA_LOSS"
        case .unauthenticated: return "UNAUTHENTICATED"
        }
    }
}

/// A call that did not succeed: its status and a message for a person.
public struct RPCError: Error, CustomStringConvertible, Sendable, Equatable {
    public let status: StatusCode
    public let message: String
    /// The request never left this side (no connection could be had): making the call again
    /// cannot make it twice, even where it is not idempotent.
    public let neverSent: Bool

    public init(_ status: StatusCode, _ message: String, neverSent: Bool = false) {
        self.status = status
        self.message = message
        self.neverSent = neverSent
    }

    /// The call may have been made at the callee though no answer came (a lost connection, a
    /// deadline, a bad answer), rather than never sent or refused: making it again could make
    /// it twice.
    public var outcomeUnknown: Bool {
        !neverSent && [.unavailable, .deadlineExceeded, .cancelled, .dataLoss].contains(status)
    }

    public var description: String { "\(status): \(message)" }
}
