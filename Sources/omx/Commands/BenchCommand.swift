import ArgumentParser
import Glibc
import Migrator
import OMXBench
import Shared

/// `omx bench`: benchmarks, each against a baseline measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measures OMX against a baseline in the same run and prints ratios and absolute figures.",
        subcommands: [RPC.self, Membership.self, Migrate.self, Balance.self, Mfs.self, Locks.self, RPCServerCommand.self])

    /// `omx bench membership`.
    struct Membership: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "membership",
            abstract: "Discovery's protocol core in a deterministic simulation: detection time, false positives, message load.")

        @Option(help: "Cluster sizes, comma separated.")
        var sizes = "100,1000"

        @Option(help: "Message-loss rates, comma separated (0.01 = 1 %).")
        var loss = "0,0.01,0.05"

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let sizeList = sizes.split(separator: ",").compactMap { Int($0) }
            let lossList = loss.split(separator: ",").compactMap { Double($0) }
            guard !sizeList.isEmpty, !lossList.isEmpty, sizeList.allSatisfy({ $0 >= 3 }) else {
                throw ValidationError("--sizes takes cluster sizes of at least 3, --loss rates like 0.01")
            }
            let rows = MembershipBenchmark(sizes: sizeList, losses: lossList).run { line in
                if !json { print("... \(line)") }
            }
            if json {
                printJSON(rows)
                return
            }
            print("\nomx bench membership: the Discovery core in virtual time (1 round = 1 probe interval, 250 ms by default)")
            let table = rows.map { row in
                [String(row.nodes), "\(String(format: row.loss * 100, decimals: 0)) %", String(row.firstDetectionRounds), String(row.spreadRounds),
                 String(row.everyoneKnowsDeadRounds), String(format: row.falsePositiveRate, decimals: 5), String(format: row.messagesPerNodePerRound, decimals: 2)]
            }
            print(formatTable(header: ["NODES", "LOSS", "1ST DETECT", "SPREAD", "ALL DEAD", "FALSE POS", "MSGS/NODE/ROUND"], rows: table), terminator: "")
            print("""
                1ST DETECT: rounds from the crash to the first suspicion; SPREAD: rounds from there until every node has heard;
                ALL DEAD: rounds until every node has it dead (includes the suspicion timeout, max(1.2 s, 4 x log10(N+1) rounds)).
                SWIM paper (Das, Gupta, Motivala, DSN 2002), beside ours: expected first detection e/(e-1) = 1.58 rounds,
                independent of N; dissemination in O(log N) rounds; message load constant per member per round (at most
                4k+2 = 14 with k = 3 indirect probes, about 2 without loss); false positives fall with k at a given loss.
                """)
        }
    }

    /// `omx bench migrate`.
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Migrates jobs of 64 MiB to 1 GiB between two local nodes, against criu dump + cp -r + criu restore (root).")

        @Option(help: "Job sizes in MiB, comma separated.")
        var sizes = "64,256,1024"

        @Option(help: "Where the benchmark's 2-node cluster lives (removed afterwards).")
        var dir = "/tmp/omx-bench-migrate"

        @Option(name: .customLong("first-address"), help: "Node 1's address.")
        var firstAddress = "127.0.98.1"

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            let sizeList = sizes.split(separator: ",").compactMap { Int($0) }
            guard !sizeList.isEmpty, sizeList.allSatisfy({ $0 > 0 }) else { throw ValidationError("--sizes takes sizes in MiB like 64,256") }
            guard getuid() == 0 else { throw ValidationError("omx bench migrate needs root (CRIU)") }
            removeTree(dir)
            let benchmark = MigrationBenchmark(sizes: sizeList, dir: dir, firstAddress: firstAddress, criu: CRIU.locate(nil).executable)
            let report = try await benchmark.run { line in
                if !json { print("... \(line)") }
            }
            if let log = try? readTextFile("\(dir)/node-1/log/migrator.log") {
                for line in log.split(separator: "\n") where line.contains("migrated job") && !json { print("... \(line.split(separator: "]").last ?? "")") }
            }
            _ = LocalClusterLauncher.down(dir: dir)
            removeTree(dir)
            if json {
                printJSON(report)
                return
            }
            print("\nomx bench migrate: a job holding N MiB moved between 2 local nodes; naive = criu dump, cp -r, criu restore (the job is down throughout)")
            let rows = report.rows.map { row in
                ["\(row.mebibytes) MiB", "\(formatMs(row.naiveDowntimeMs)) ms", "\(formatMs(row.omxFreezeMs)) ms", "\(String(format: row.freezeRatio, decimals: 2))x",
                 "\(formatMs(row.naiveTotalMs)) ms", "\(formatMs(row.omxTotalMs)) ms", "\(String(format: row.totalRatio, decimals: 2))x",
                 "\(formatMiB(row.sourcePeakExtraMiB)) / \(formatMiB(row.targetPeakExtraMiB)) MiB", row.mode]
            }
            print(formatTable(
                header: ["JOB", "NAIVE DOWN", "OMX FREEZE", "FREEZE/NAIVE", "NAIVE TOTAL", "OMX TOTAL", "TOTAL/NAIVE", "MIGRATOR PEAK +MEM (SRC / DST)", "MODE"],
                rows: rows), terminator: "")
            print("idle omx-migrator resident memory: \(formatMiB(report.idleMigratorMiB)) MiB (target: under 30 MiB)")
            print("targets: freeze <= 0.10x naive downtime, total <= 1.5x naive total, peak extra memory <= 64 MiB per Migrator")
        }
    }

    /// `omx bench balance`.
    struct Balance: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "balance",
            abstract: "The Balancer's decision core in a simulated cluster, against no migration, random and power-of-two placement and the ideal.")

        @Option(help: "Cluster sizes, comma separated.")
        var sizes = "64,1000,10000"

        @Option(help: "Offered loads, comma separated.")
        var loads = "0.5,0.7,0.9"

        @Option(help: "Seconds of arrivals.")
        var seconds = 200.0

        @Option(name: .customLong("migration-ms"), help: "A migration's fixed cost in ms (omx bench migrate).")
        var migrationMs = 200.0

        @Option(name: .customLong("migration-mbps"), help: "Migration throughput in MiB/s (omx bench migrate).")
        var migrationMiBps = 300.0

        @Option(help: "Random seed.")
        var seed: UInt64 = 1

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let sizeList = sizes.split(separator: ",").compactMap { Int($0) }
            let loadList = loads.split(separator: ",").compactMap { Double($0) }
            guard !sizeList.isEmpty, sizeList.allSatisfy({ $0 >= 2 }), !loadList.isEmpty, loadList.allSatisfy({ $0 > 0 && $0 < 1 }) else {
                throw ValidationError("--sizes takes node counts of at least 2, --loads values between 0 and 1")
            }
            var results: [BalanceSimulator.Result] = []
            var table: [[String]] = []
            for size in sizeList {
                for load in loadList {
                    var options = BalanceSimulator.Options()
                    options.nodes = size
                    options.load = load
                    options.seed = seed
                    options.arrivalSeconds = seconds
                    options.migrationFixedMs = migrationMs
                    options.migrationMiBps = migrationMiBps
                    let simulator = BalanceSimulator(options: options)
                    var ideal: BalanceSimulator.Result?
                    for policy in BalanceSimulator.Policy.allCases {
                        let started = monotonicNs()
                        let result = simulator.run(policy)
                        if policy == .ideal { ideal = result }
                        results.append(result)
                        let bound = ideal ?? result
                        if !json {
                            print("... \(size) nodes, load \(load), \(policy.rawValue): mean slowdown \(String(format: result.meanSlowdown, decimals: 2)), makespan \(Int(result.makespan)) s (\((monotonicNs() - started) / 1_000_000) ms to simulate)")
                        }
                        table.append([
                            String(size), "\(Int(load * 100)) %", policy.rawValue, String(result.jobs),
                            String(format: result.meanSlowdown, decimals: 2), "\(String(format: result.meanSlowdown / bound.meanSlowdown, decimals: 2))x",
                            "\(Int(result.makespan)) s", "\(String(format: result.makespan / bound.makespan, decimals: 2))x",
                            String(format: result.migrationsPerJob, decimals: 3), String(format: result.messagesPerNodePerSecond, decimals: 1),
                        ])
                    }
                }
            }
            if json {
                printJSON(results)
                return
            }
            print("\nomx bench balance: processor-sharing nodes of speeds 500/1000/2000 (30/50/20 %), Poisson arrivals at random homes for \(Int(seconds)) s,")
            print("bounded-Pareto work (alpha 1.5, 0.5-300 reference-CPU seconds), migrations cost \(Int(migrationMs)) ms + RSS at \(Int(migrationMiBps)) MiB/s (8 MiB-1 GiB)")
            print(formatTable(header: ["NODES", "LOAD", "POLICY", "JOBS", "SLOWDOWN", "VS IDEAL", "MAKESPAN", "VS IDEAL", "MIGR/JOB", "MSGS/NODE/S"], rows: table), terminator: "")
            print("ideal: one perfectly balanced machine of the whole capacity (at most the fastest CPU per job), free instant moves: the lower bound.")
            print("targets: omx within 1.3x of ideal at 70 % load, better than every other policy at every load, under 0.5 migrations per job.")
        }
    }

    /// `omx bench mfs`.
    struct Mfs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mfs",
            abstract: "fio through /mfs/<other node>/ against the local disk and sshfs over loopback, plus a metadata run (root).")

        @Option(help: "MiB per sequential run.")
        var size = 1024

        @Option(help: "Files in the metadata run.")
        var files = 10_000

        @Option(help: "Times each test runs on each side, the sides taking turns (the median counts).")
        var rounds = 3

        @Option(help: "Where the benchmark's 2-node cluster lives (removed afterwards).")
        var dir = "/tmp/omx-bench-mfs"

        @Option(name: .customLong("first-address"), help: "Node 1's address.")
        var firstAddress = "127.0.97.1"

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            guard getuid() == 0 else { throw ValidationError("omx bench mfs needs root (FUSE mounts, sshd)") }
            guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
            let benchmark = MfsBenchmark(dir: dir, sizeMiB: size, files: files, firstAddress: firstAddress, rounds: rounds)
            let rows = try await BenchCommand.onScratchCluster(dir, quiet: json, benchmark.run)
            if json {
                printJSON(rows)
                return
            }
            print("\nomx bench mfs: fio (psync) through node 1's /mfs/2 (node 2's gateway over TCP), the local disk, and sshfs over loopback;")
            print("each side on a new ext4 file system of its own, the page cache emptied before every run, medians of \(rounds) rounds")
            let table = rows.map { row in
                [row.test, "\(String(format: row.local, decimals: 1)) \(row.unit)", "\(String(format: row.mfs, decimals: 1)) \(row.unit)",
                 "\(String(format: row.sshfs, decimals: 1)) \(row.unit)", "\(String(format: row.mfs / row.local, decimals: 2))x", "\(String(format: row.mfs / row.sshfs, decimals: 2))x"]
            }
            print(formatTable(header: ["TEST", "LOCAL", "MFS", "SSHFS", "MFS/LOCAL", "MFS/SSHFS"], rows: table), terminator: "")
            print("targets: sequential >= 2x sshfs and >= 0.5x local; metadata >= 1.5x sshfs")
        }
    }

    /// `omx bench locks`.
    struct Locks: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "locks",
            abstract: "File lock and unlock pairs through /mfs (same node and other node) against the local disk (root).")

        @Option(help: "Lock and unlock pairs per run.")
        var pairs = 2_000

        @Option(help: "Times each test runs on each side, the sides taking turns (the median counts).")
        var rounds = 3

        @Option(help: "Where the benchmark's 2-node cluster lives (removed afterwards).")
        var dir = "/tmp/omx-bench-locks"

        @Option(name: .customLong("first-address"), help: "Node 1's address.")
        var firstAddress = "127.0.96.1"

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            guard getuid() == 0 else { throw ValidationError("omx bench locks needs root (FUSE mounts)") }
            guard rounds >= 1, pairs >= 1 else { throw ValidationError("--rounds and --pairs must be at least 1") }
            let benchmark = LockBenchmark(dir: dir, pairs: pairs, rounds: rounds, firstAddress: firstAddress)
            let rows = try await BenchCommand.onScratchCluster(dir, quiet: json, benchmark.run)
            if json {
                printJSON(rows)
                return
            }
            print("\nomx bench locks: \(pairs) lock and unlock pairs on one file, uncontended, medians of \(rounds) rounds;")
            print("through node 1's /mfs/1 (its own gateway, Unix socket) and /mfs/2 (node 2's gateway over TCP), against the local disk")
            let table = rows.map { row in
                [row.test, "\(String(format: row.local, decimals: 0))/s", "\(String(format: row.mfsSameNode, decimals: 0))/s", "\(String(format: row.mfsOtherNode, decimals: 0))/s",
                 "\(String(format: row.mfsSameNode / row.local, decimals: 3))x", "\(String(format: row.mfsOtherNode / row.local, decimals: 3))x"]
            }
            print(formatTable(header: ["TEST", "LOCAL", "MFS SAME NODE", "MFS OTHER NODE", "SAME/LOCAL", "OTHER/LOCAL"], rows: table), terminator: "")
        }
    }

    /// Runs `body` (printing its progress unless `quiet`), which starts a local cluster in
    /// `dir`; the cluster and `dir` go before and after, whatever happens: also on SIGINT
    /// (^C) or SIGTERM, which stop the cluster (its services run in sessions of their own, out
    /// of the signal's reach) and end the benchmark with status 128 + the signal.
    static func onScratchCluster<T>(_ dir: String, quiet: Bool, _ body: ((String) -> Void) async throws -> T) async throws -> T {
        _ = LocalClusterLauncher.down(dir: dir)
        removeTree(dir)
        let termination = try await BenchTermination.watch(stopping: "the benchmark's cluster in \(dir)") {
            _ = LocalClusterLauncher.down(dir: dir)
            removeTree(dir)
        }
        defer { removeTree(dir) }
        do {
            let result = try await body { line in
                if !quiet { print("... \(line)") }
            }
            _ = LocalClusterLauncher.down(dir: dir)
            await termination.finish()
            return result
        } catch {
            _ = LocalClusterLauncher.down(dir: dir)
            await termination.finish()
            throw error
        }
    }
}
