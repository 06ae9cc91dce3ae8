import Logging

/// Keeps a server's connections within bounds, so that no one caller can take a service's
/// file descriptors or memory from the others (loop thread only):
/// - a local user other than root may hold `perUser` connections, a TCP peer address that
///   signed `perAddress`;
/// - a TCP connection counts only once it showed a valid signature: until then it is one of at
///   most `unprovenPerAddress` per address (a new one pushes the oldest out) and has
///   `signInTimeout` to sign a call, so callers without the key can never crowd out those with it;
/// - a frame must arrive whole, and answers held back from a peer that reads none of them
///   (reading paused) must move, within `stalledTimeout`.
/// Each refusal is an envelope of call id 0 with RESOURCE_EXHAUSTED naming the limit, and a log line.
final class ConnectionGuard {
    struct Limits {
        var perUser: Int
        var perAddress: Int
        var unprovenPerAddress = 64
        var signInTimeoutNs: UInt64
        var stalledTimeoutNs: UInt64
    }

    let limits: Limits
    private let name: String
    private let logger: Logger
    private var quota: ConnectionQuota
    /// TCP connections yet to sign a call, by address, oldest first.
    private var unproven: [String: [Connection]] = [:]

    init(limits: Limits, name: String, logger: Logger) {
        self.limits = limits
        self.name = name
        self.logger = logger
        quota = ConnectionQuota(perUser: limits.perUser, perAddress: limits.perAddress)
    }

    /// How often `sweep` should run: often enough that no deadline is overshot by much.
    var sweepIntervalMs: UInt64 { max(min(limits.signInTimeoutNs, limits.stalledTimeoutNs) / 5 / 1_000_000, 1) }

    /// Takes a new connection from `caller`; `mustSign`: a TCP connection whose calls are
    /// checked, which counts only once it signed one.
    /// - Returns: false when it was refused (and is closing).
    func admit(_ connection: Connection, caller: Caller, mustSign: Bool) -> Bool {
        let holder = ConnectionQuota.holder(of: caller)
        guard mustSign, case let .address(address)? = holder else {
            return count(connection, against: holder)
        }
        var waiting = unproven[address, default: []]
        if waiting.count >= limits.unprovenPerAddress {
            let oldest = waiting.removeFirst()
            oldest.awaitingSignature = false
            oldest.quotaHolder = nil
            refuse(oldest, "\(limits.unprovenPerAddress) connections from \(address) have signed no call yet; closing the oldest")
        }
        waiting.append(connection)
        unproven[address] = waiting
        connection.quotaHolder = holder
        connection.awaitingSignature = true
        return true
    }

    /// `connection` showed its first valid signature: it now counts against its address.
    /// - Returns: false when the address holds all it may (the connection is refused and closing).
    func signed(_ connection: Connection) -> Bool {
        guard connection.awaitingSignature else { return true }
        let holder = connection.quotaHolder
        forgetUnproven(connection)
        connection.quotaHolder = nil
        return count(connection, against: holder)
    }

    /// Forgets a closed connection.
    func closed(_ connection: Connection) {
        if connection.awaitingSignature {
            forgetUnproven(connection)
        } else {
            quota.release(connection.quotaHolder)
        }
        connection.quotaHolder = nil
    }

    /// Refuses the connections past a deadline, and closes at once those told before.
    func sweep(_ connections: some Sequence<Connection>) {
        let now = monotonicNs()
        for connection in connections {
            if connection.toldToGo {
                connection.close(nil)
            } else if connection.awaitingSignature && now - connection.madeNs > limits.signInTimeoutNs {
                refuse(connection, "no signed call within \(secondsText(limits.signInTimeoutNs)) of connecting")
            } else if let reason = connection.overdue(nowNs: now, timeoutNs: limits.stalledTimeoutNs) {
                if connection.isClosingAfterFlush {
                    // Told why already: what it left unread goes with the connection.
                    logger.warning("\(name): closing the connection from \(connection.peer): \(reason)")
                    connection.close(nil)
                } else {
                    refuse(connection, reason)
                }
            }
        }
    }

    private func count(_ connection: Connection, against holder: ConnectionQuota.Holder?) -> Bool {
        if let refusal = quota.admit(holder) {
            // Logged when the limit is reached, not for every connection of a flood.
            refuse(connection, refusal.reason, log: refusal.isFirst)
            return false
        }
        connection.quotaHolder = holder
        return true
    }

    private func forgetUnproven(_ connection: Connection) {
        connection.awaitingSignature = false
        guard case let .address(address)? = connection.quotaHolder, var waiting = unproven[address] else { return }
        waiting.removeAll { $0 === connection }
        unproven[address] = waiting.isEmpty ? nil : waiting
    }

    /// Tells the peer why with a refusal of call id 0 and closes the connection once that is
    /// written (or at the next sweep, if the peer reads nothing).
    private func refuse(_ connection: Connection, _ reason: String, log: Bool = true) {
        if log { logger.warning("\(name): closing the connection from \(connection.peer): \(reason)") }
        connection.toldToGo = true
        connection.send(Envelope.failure(callID: 0, method: "", RPCError(.resourceExhausted, "\(name): \(reason)")).frame())
        connection.closeAfterFlush()
    }
}
