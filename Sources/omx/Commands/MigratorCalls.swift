import ArgumentParser
import Glibc
import Shared

extension ClusterSession {
    /// How long a call that makes a move, or may wait for one in progress (migrate, kill,
    /// lock), waits: longer than a Migrator waits for a move under way to settle (900 s) and
    /// then makes its own (a restore may take 300 s).
    static let settlingTimeout: Duration = .seconds(1_800)

    /// Calls `method` on the local node's Migrator (its Unix socket: the kernel tells it who we
    /// are; it forwards calls about jobs elsewhere to their home). On failure prints
    /// "omx COMMAND: why", closes the session and exits with status 1.
    func callMigrator<Request: WireMessage, Response: WireMessage>(
        _ command: String, _ method: String, _ request: Request, returning: Response.Type = Response.self, timeout: Duration = .seconds(30)
    ) async throws -> Response {
        let client = try self.client(for: .migrator, node: nil)
        do {
            return try await client.call(method, request, returning: Response.self, timeout: timeout)
        } catch let error as RPCError {
            var hint = ""
            if error.status == .unavailable, case let .unix(path) = client.endpoint, error.message.contains(path) {
                hint = " (is this node's omx-migrator running?)"
            }
            printError("omx \(command): \(error.message)\(hint)")
            await close()
            throw ExitCode.failure
        }
    }
}

/// The exit status a shell would show for a job's "exit N" / "signal N" / "lost: ..." outcome.
func shellStatus(ofJobExit exit: String) -> Int32 {
    let parts = exit.split(separator: " ")
    guard parts.count == 2, let number = Int32(parts[1]) else { return 1 }
    return parts[0] == "signal" ? 128 + number : number
}
