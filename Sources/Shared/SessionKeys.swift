import COpenSSL

/// Which key and algorithm made an envelope's MAC (`omx.AuthScheme`).
public enum AuthScheme: UInt32, Sendable {
    /// HMAC-SHA256 keyed with the cluster key: 32 bytes.
    case clusterHMACSHA256 = 0
    /// ChaCha20-Poly1305 under the connection's session key for the sender's direction: 16 bytes.
    case sessionChaCha20Poly1305 = 1
}

/// The keys of one TCP connection's session (proto/README.md, "Sessions"). After a `Session`
/// call, each side signs the large bodies it sends with ChaCha20-Poly1305 under the key of its
/// direction instead of HMAC-SHA256 under the cluster key: the same signing string, about six
/// times less CPU per byte. The keys come from the cluster key and random bytes of both sides, so they
/// are new for every connection and no envelope of one connection holds on another.
public struct SessionKeys: Sendable {
    /// Which end of the connection this side is.
    public enum Side: Sendable {
        case client, server
    }

    /// The key this side signs with, and the key the peer's envelopes are checked with.
    let sending: [UInt8]
    let receiving: [UInt8]

    static let randomSize = 32
    /// Bodies smaller than this are signed with the cluster key even on a connection with a
    /// session: for them HMAC-SHA256's lower fixed cost outweighs ChaCha20-Poly1305's speed.
    public static let minimumBody = 4_096

    /// The keys of a session agreed with `clientRandom` and `serverRandom`, as `side` uses them:
    /// HMAC-SHA256(cluster key, label || client random || server random), where the label is
    /// "OMX1 session client" for what the client sends and "OMX1 session server" for the server's.
    init(key: ClusterKey, clientRandom: [UInt8], serverRandom: [UInt8], side: Side) {
        let client = key.mac(Array("OMX1 session client".utf8), followedBy: clientRandom + serverRandom)
        let server = key.mac(Array("OMX1 session server".utf8), followedBy: clientRandom + serverRandom)
        (sending, receiving) = side == .client ? (client, server) : (server, client)
    }

    /// The 16-byte MAC of a signing head followed by a body under `key` (`sending` or
    /// `receiving`), with the last 12 bytes of the envelope's 16-byte nonce as the
    /// ChaCha20-Poly1305 nonce, written to `out`.
    static func mac(
        _ key: [UInt8], nonce: UnsafeRawBufferPointer, head: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer
    ) {
        precondition(nonce.count == 16, "a session MAC needs the envelope's 16-byte nonce")
        let ok = key.withUnsafeBufferPointer { key in
            COpenSSL_chacha20_poly1305_tag(
                key.baseAddress, nonce.baseAddress!.advanced(by: 4).assumingMemoryBound(to: UInt8.self),
                head.baseAddress?.assumingMemoryBound(to: UInt8.self), head.count,
                body.baseAddress?.assumingMemoryBound(to: UInt8.self), body.count, out.assumingMemoryBound(to: UInt8.self))
        }
        precondition(ok == 1, "ChaCha20-Poly1305 failed in libcrypto")
    }
}

/// A client's half of agreeing on a session: its random bytes, then the keys from the answer.
struct SessionOffer {
    /// The method every service answers on TCP to agree on a session.
    static let method = "Session"

    let clientRandom = randomBytes(SessionKeys.randomSize)

    /// The body of the `Session` request.
    var request: [UInt8] { SessionRequest(clientRandom: clientRandom).wire() }

    /// The client's keys from the server's answer.
    /// - Throws: `RPCError` (DATA_LOSS) when the answer is no `SessionResponse` of 32 random bytes.
    func keys(from answer: [UInt8], authenticator: Authenticator) throws -> SessionKeys {
        let response = try SessionResponse(wire: answer)
        guard response.serverRandom.count == SessionKeys.randomSize else {
            throw RPCError(.dataLoss, "Session answered with \(response.serverRandom.count) random bytes (\(SessionKeys.randomSize) expected)")
        }
        return authenticator.sessionKeys(clientRandom: clientRandom, serverRandom: response.serverRandom, side: .client)
    }
}
