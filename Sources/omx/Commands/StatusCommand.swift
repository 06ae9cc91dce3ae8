import ArgumentParser
import FoundationEssentials
import Glibc
import Shared

/// `omx status`: every node of the cluster as the local node's Discovery sees it.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Shows every node: id, address, state (alive, suspect, dead, left, mismatch), services, version.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print again whenever the membership changes (Ctrl-C to stop).")
    var watch = false

    func run() async throws {
        bootstrapLogging(level: global.logLevel)
        let session = try ClusterSession(global: global)
        let client = try session.client(for: .discovery, node: nil)
        do {
            var response = try await client.call("Discovery.Members", MembersRequest(), returning: MembersResponse.self)
            show(response)
            fflush(stdout)
            while watch {
                response = try await client.call(
                    "Discovery.Watch", WatchRequest(afterChange: response.change, timeoutMs: 30_000), returning: MembersResponse.self,
                    timeout: .seconds(35))
                if !global.json { print("") }
                show(response)
                fflush(stdout)
            }
        } catch let error as RPCError {
            printError("omx status: Discovery at \(client.endpoint): \(error)")
            await session.close()
            throw ExitCode.failure
        }
        await session.close()
    }

    private func show(_ response: MembersResponse) {
        if global.json {
            printJSON(response.members.map(StatusRow.init))
            return
        }
        let now = wallClockMs()
        let rows = response.members.map { member -> [String] in
            let services = Dictionary(grouping: member.services, by: \.kind).sorted { $0.key < $1.key }
                .map { $0.value.count == 1 ? $0.key : "\($0.key)x\($0.value.count)" }.joined(separator: ",")
            let heard = member.id == response.selfNode ? "self" : member.lastHeardMs == 0 ? "never" : "\(formatSeconds(now - min(now, member.lastHeardMs))) ago"
            let state = member.state == .mismatch ? "mismatch (\(member.mismatch))" : member.state.description
            return [String(member.id), member.address, member.version.isEmpty ? "-" : member.version, services.isEmpty ? "-" : services, heard, state]
        }
        print(formatTable(header: ["ID", "ADDRESS", "VERSION", "SERVICES", "HEARD", "STATE"], rows: rows), terminator: "")
    }
}

/// One node in `omx status --json`.
struct StatusRow: Encodable {
    struct Service: Encodable {
        let kind: String
        let instance: UInt32
        let address: String
        let port: UInt32
        let pid: UInt32
    }

    let id: UInt32
    let address: String
    let aliases: [String]
    let state: String
    let liveness: String
    let incarnation: UInt64
    let version: String
    let mapDigest: String
    let lastHeardMs: UInt64
    let mismatch: String?
    let services: [Service]

    init(_ member: MemberView) {
        id = member.id
        address = member.address
        aliases = member.aliases
        state = member.state.description
        liveness = member.liveness.description
        incarnation = member.incarnation
        version = member.version
        mapDigest = member.mapDigest
        lastHeardMs = member.lastHeardMs
        mismatch = member.mismatch.isEmpty ? nil : member.mismatch
        services = member.services.map { Service(kind: $0.kind, instance: $0.instance, address: $0.address, port: $0.port, pid: $0.pid) }
    }
}
