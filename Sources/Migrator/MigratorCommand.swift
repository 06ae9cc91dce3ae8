import ArgumentParser
import Shared

/// `omx-migrator`: the Migrator service of one node.
public struct MigratorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "omx-migrator",
        abstract: "Runs the Migrator service of one OMX node: jobs, CRIU checkpoint/restore, image transfer.",
        discussion: """
            Jobs live in --state-dir (the registry, kept across restarts) and write their output to
            --spool-dir/<job>/. CRIU restores open files by path, so the spool must be the same path on
            every node: /mfs/<home>/... on real machines, one disk on a local cluster.
            """)

    @OptionGroup var options: ServiceOptions

    @Option(name: .customLong("state-dir"), help: "The job registry and migration images.")
    var stateDir = "/var/lib/omx/migrator"

    @Option(name: .customLong("spool-dir"), help: "Where this node's jobs write stdout, stderr and status.")
    var spoolDir = "/var/spool/omx"

    @Option(help: "The criu executable (default: omx-criu, else criu, from PATH).")
    var criu: String?

    @Option(name: .customLong("max-transfer-rate"), help: "Cap on migration image traffic sent, in MiB/s (0: none).")
    var maxTransferRate: UInt64 = 0

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .migrator, options: options)
        let service = try MigratorService(
            host: host, stateDir: stateDir, spoolDir: spoolDir, criu: CRIU.locate(criu), maxTransferRate: maxTransferRate << 20)
        await service.start()
        try await host.run(background: { await service.monitor() }, beforeStop: { await service.sendGuestsAway() })
    }
}
