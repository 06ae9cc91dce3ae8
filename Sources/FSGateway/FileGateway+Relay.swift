import Glibc
import Shared

extension FileGateway {
    /// DFSA off: a call of one of this node's jobs running elsewhere, which its node's mount
    /// sends here (the job's home) to be made on node `request.relayTo`'s gateway — on the
    /// instance that holds its handle when it names one — as openMosix's deputy made a
    /// migrated process's system calls at home. Only other nodes' mounts may ask.
    func relay(_ method: String, _ request: FsRequest, caller: Caller) async throws -> FsResponse {
        guard case let .remote(_, node) = caller, node != 0 else {
            return FsResponse(errorNumber: EPERM, error: "FSGateway.\(method): only other nodes' /mfs mounts may ask for a relay (caller: \(caller))")
        }
        var onward = request
        onward.relayTo = 0
        onward.relayInstance = ""
        onward.relayRetry = false
        let target = request.relayTo
        let pinned = request.relayInstance.isEmpty ? nil : request.relayInstance
        metrics.add(
            "omx_fs_relayed_total", help: "Calls of this node's jobs running elsewhere relayed to a gateway (DFSA off), by target node.",
            labels: [("to", String(target))])
        // The directory's calls block their thread until the other node answers: made in the
        // lane of calls that may take long.
        return try await lanes.run(.mayHang("node \(target)"), method) { [relays, onward] in
            do {
                var (answer, instance) = try relays.call(target, method, onward, retry: request.relayRetry, pinned: pinned)
                answer.instance = instance
                return answer
            } catch {
                return FsResponse(errorNumber: EIO, error: "FSGateway.\(method) \(request.path): relaying to node \(target) failed: \(error)")
            }
        }
    }
}
