import Shared
import Synchronization

/// The image transfers this node is receiving, safe to use from any thread: chunks are
/// written straight from the RPC handler, in parallel, without waiting for the Migrator.
final class IncomingTransfers: Sendable {
    private struct State {
        var receivers: [String: ImageReceiver] = [:]
        /// Why recent transfers were dropped, so chunks still in flight get the first reason.
        var dropped: [String: String] = [:]
    }

    private let state = Mutex(State())

    /// Adds a transfer; false when one with its id is under way already.
    func add(_ receiver: ImageReceiver) -> Bool {
        state.withLock { state in
            guard state.receivers[receiver.transfer] == nil else { return false }
            state.receivers[receiver.transfer] = receiver
            return true
        }
    }

    func contains(_ transfer: String) -> Bool { state.withLock { $0.receivers[transfer] != nil } }

    /// Takes a transfer out (to restore it, or to forget it); its files close once nobody
    /// holds it (no chunk is being written).
    @discardableResult
    func remove(_ transfer: String) -> ImageReceiver? {
        state.withLock { $0.receivers.removeValue(forKey: transfer) }
    }

    /// Drops the transfers that received nothing for `idleNs` (their source died or gave up
    /// without an `Abort` arriving) and returns them.
    func dropIdle(longerThan idleNs: UInt64) -> [ImageReceiver] {
        let now = monotonicNs()
        return state.withLock { state in
            let idle = state.receivers.values.filter { $0.idleNs(at: now) > idleNs }
            for receiver in idle {
                state.receivers[receiver.transfer] = nil
                state.dropped[receiver.transfer] = "no chunk arrived for \(idleNs / 1_000_000_000) s"
            }
            return idle
        }
    }

    /// `Migrator.Chunk`: writes one chunk (parsed in place) into its transfer. A bad chunk
    /// drops the whole transfer and its files.
    /// - Throws: NOT_FOUND for an unknown transfer, ABORTED with the first reason for a
    ///   dropped one, or the chunk's own error (DATA_LOSS on a checksum mismatch).
    func write(_ body: [UInt8], node: UInt32) throws -> String {
        try TransferChunk.decode(body) { header, data in
            let receiver: ImageReceiver = try state.withLock { state in
                if let receiver = state.receivers[header.transfer] { return receiver }
                if let reason = state.dropped[header.transfer] {
                    throw RPCError(.aborted, "Migrator.Chunk: node \(node) dropped transfer \(header.transfer): \(reason)")
                }
                throw RPCError(.notFound, "Migrator.Chunk: node \(node) has no transfer \(header.transfer) under way")
            }
            do {
                try receiver.write(header, data)
            } catch {
                state.withLock { state in
                    if state.dropped.count > 100 { state.dropped.removeAll() }
                    state.dropped[header.transfer] = (error as? RPCError)?.message ?? "\(error)"
                }
                if let removed = remove(header.transfer) { removeTree(removed.directory) }
                throw error
            }
            return header.transfer
        }
    }
}
