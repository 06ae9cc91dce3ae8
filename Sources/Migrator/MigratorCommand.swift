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

    @Option(name: .customLong("state-dir"), help: "The job registry and migration images (default: the configuration's, else /var/lib/omx/migrator).")
    var stateDir: String?

    @Option(name: .customLong("spool-dir"), help: "Where this node's jobs write stdout, stderr and status (default: the configuration's, else /var/spool/omx).")
    var spoolDir: String?

    @Option(help: "The criu executable (default: the configuration's, else omx-criu, else criu, from PATH).")
    var criu: String?

    @Option(name: .customLong("max-transfer-rate"), help: "Cap on migration image traffic sent, in MiB/s (default: the configuration's, else 0: none).")
    var maxTransferRate: UInt64?

    @Option(name: .customLong("lost-after"), help: "Seconds a node running this home's jobs may be dead (and its Migrator silent) before they are recorded as lost (default: the configuration's, else 30).")
    var lostAfter: UInt64?

    public init() {}

    public func run() async throws {
        let host = try ServiceHost(kind: .migrator, options: options)
        let settings = OMXConfig.active.migrator
        let service = try MigratorService(
            host: host, stateDir: stateDir ?? settings.stateDir ?? "/var/lib/omx/migrator", spoolDir: spoolDir ?? settings.spoolDir ?? "/var/spool/omx",
            criu: CRIU.locate(criu ?? settings.criu), maxTransferRate: (maxTransferRate ?? settings.maxTransferRateMiBps ?? 0) << 20,
            lostAfter: .seconds(lostAfter ?? settings.lostAfterSeconds ?? 30))
        await service.start()
        try await host.run(background: { await service.monitor() }, beforeStop: { await service.sendGuestsAway(waitingForArrivals: MigratorService.stopWaitsForArrivals) })
    }
}
