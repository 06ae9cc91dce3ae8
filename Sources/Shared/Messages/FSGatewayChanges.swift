import OMXProto

/// `omx.fsgateway.Change`: one change to a gateway's exported tree.
public struct TreeChange: Sendable, Equatable {
    /// Relative to the export root.
    public var path: String
    /// The entry appeared, went or moved (its directory's listing changed, and everything
    /// beneath it); otherwise only its attributes or data changed.
    public var entry: Bool
    /// It is (or was) a directory: what lay beneath it changed too (moved, or now reached
    /// with other permissions).
    public var directory: Bool

    /// The same change: of the same path, byte for byte ("é" and "e" + U+0301 are two names).
    public static func == (lhs: TreeChange, rhs: TreeChange) -> Bool {
        lhs.path.utf8.elementsEqual(rhs.path.utf8) && lhs.entry == rhs.entry && lhs.directory == rhs.directory
    }

    public init(path: String, entry: Bool, directory: Bool = false) {
        self.path = path
        self.entry = entry
        self.directory = directory
    }
}

/// `omx.fsgateway.ChangesRequest`: a mount asking what changed after position `since`.
public struct ChangesRequest: WireMessage, Equatable {
    /// The `next` of the previous answer; 0 asks where the feed stands now.
    public var since: UInt64
    /// How long to wait when nothing changed after `since`.
    public var waitMs: UInt32
    /// The asking mount: changes it made itself are left out.
    public var client: UInt64

    public init(since: UInt64, waitMs: UInt32, client: UInt64) {
        self.since = since
        self.waitMs = waitMs
        self.client = client
    }

    static let codec = ProtoCodec<Omx__Fsgateway__ChangesRequest>(
        name: "omx.fsgateway.ChangesRequest", initialize: { omx__fsgateway__changes_request__init($0) },
        packedSize: { omx__fsgateway__changes_request__get_packed_size($0) }, pack: { omx__fsgateway__changes_request__pack($0, $1) },
        unpack: { omx__fsgateway__changes_request__unpack($0, $1, $2) }, free: { omx__fsgateway__changes_request__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ChangesRequest.codec.decode(bytes) { ChangesRequest(since: $0.since, waitMs: $0.wait_ms, client: $0.client) }
    }

    public func wire() -> [UInt8] {
        ChangesRequest.codec.encode { message, _ in
            message.since = since
            message.wait_ms = waitMs
            message.client = client
        }
    }
}

/// `omx.fsgateway.ChangesResponse`: the changes after a position, and where to go on from.
public struct ChangesResponse: WireMessage, Equatable {
    /// Pass as `since` in the next call.
    public var next: UInt64 = 0
    public var changes: [TreeChange] = []
    /// Changes after `since` were lost: forget everything cached of this node.
    public var reset = false
    /// False: changes made on the node outside its gateways are not seen.
    public var watching = false
    /// Subtrees whose changes are not seen (file systems the kernel cannot watch).
    public var unwatched: [String] = []

    public init() {}

    static let codec = ProtoCodec<Omx__Fsgateway__ChangesResponse>(
        name: "omx.fsgateway.ChangesResponse", initialize: { omx__fsgateway__changes_response__init($0) },
        packedSize: { omx__fsgateway__changes_response__get_packed_size($0) }, pack: { omx__fsgateway__changes_response__pack($0, $1) },
        unpack: { omx__fsgateway__changes_response__unpack($0, $1, $2) }, free: { omx__fsgateway__changes_response__free_unpacked($0, $1) })
    static let changeCodec = ProtoCodec<Omx__Fsgateway__Change>(
        name: "omx.fsgateway.Change", initialize: { omx__fsgateway__change__init($0) },
        packedSize: { omx__fsgateway__change__get_packed_size($0) }, pack: { omx__fsgateway__change__pack($0, $1) },
        unpack: { omx__fsgateway__change__unpack($0, $1, $2) }, free: { omx__fsgateway__change__free_unpacked($0, $1) })

    public init(wire bytes: [UInt8]) throws {
        self = try ChangesResponse.codec.decode(bytes) { message in
            var response = ChangesResponse()
            response.next = message.next
            response.changes = (0..<message.n_changes).compactMap { index in
                message.changes[index].map { TreeChange(path: cString($0.pointee.path), entry: $0.pointee.entry != 0, directory: $0.pointee.directory != 0) }
            }
            response.reset = message.reset != 0
            response.watching = message.watching != 0
            response.unwatched = cStrings(message.n_unwatched, message.unwatched)
            return response
        }
    }

    public func wire() -> [UInt8] {
        ChangesResponse.codec.encode { message, arena in
            message.next = next
            let changeArray = arena.array(of: UnsafeMutablePointer<Omx__Fsgateway__Change>?.self, count: changes.count)
            for (index, change) in changes.enumerated() {
                let wire = arena.message(ChangesResponse.changeCodec)
                wire.pointee.path = arena.string(change.path)
                wire.pointee.entry = change.entry ? 1 : 0
                wire.pointee.directory = change.directory ? 1 : 0
                changeArray[index] = wire
            }
            message.n_changes = changes.count
            message.changes = changeArray
            message.reset = reset ? 1 : 0
            message.watching = watching ? 1 : 0
            message.n_unwatched = unwatched.count
            message.unwatched = arena.strings(unwatched)
        }
    }
}
