import Glibc
import Logging
import Shared

/// `omx bench migrate`: moves jobs holding N MiB between two nodes of a local cluster, next to
/// the naive way measured in the same run (criu dump to a folder, copy the folder, criu
/// restore), and watches both Migrators' memory while they move the job.
struct MigrationBenchmark {
    struct Row: Encodable {
        let mebibytes: Int
        let naiveDowntimeMs: Double
        let naiveTotalMs: Double
        let omxFreezeMs: Double
        let omxTotalMs: Double
        let mode: String
        let imageBytes: UInt64
        let sourcePeakExtraMiB: Double
        let targetPeakExtraMiB: Double
        var freezeRatio: Double { omxFreezeMs / naiveDowntimeMs }
        var totalRatio: Double { omxTotalMs / naiveTotalMs }
    }

    struct Report: Encodable {
        let rows: [Row]
        let idleMigratorMiB: Double
    }

    let sizes: [Int]
    let dir: String
    let firstAddress: String
    let criu: String

    /// The job: N MiB of non-zero memory, a small part rewritten every second.
    static let memoryProgram = """
        import os, sys, time
        size = int(sys.argv[1]) << 20
        memory = bytearray(os.urandom(1 << 20)) * (size >> 20)
        open(sys.argv[2], "w").write("ready\\n")
        step = 0
        while True:
            for offset in range(step % 64 * 4096, size, 64 << 20):
                memory[offset:offset + 4096] = os.urandom(4096)
            step += 1
            time.sleep(1)
        """

    func run(progress: (String) -> Void) async throws -> Report {
        let launcher = try LocalClusterLauncher(dir: dir)
        _ = try launcher.up(nodes: 2, gateways: 0, firstAddress: firstAddress)
        defer { _ = LocalClusterLauncher.down(dir: launcher.dir) }
        try await launcher.waitUntilAlive(nodes: 2, timeoutSeconds: 20)
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(launcher.runDir(node: 1))/migrator.sock"), logger: Logger(label: "bench"))
        let back = RPCClient(loop: loop, endpoint: .unix(path: "\(launcher.runDir(node: 2))/migrator.sock"), logger: Logger(label: "bench"))
        _ = try await client.call("Migrator.List", ListJobsRequest(cluster: false), returning: ListJobsResponse.self)
        let migrators = [1, 2].map { LocalClusterLauncher.runningPID("\(launcher.runDir(node: $0))/migrator.pid") ?? 0 }
        try await Task.sleep(for: .seconds(1))
        let idle = Double(residentKiB(of: migrators[0]) ?? 0) / 1024
        progress("idle omx-migrator: \(formatMiB(idle)) MiB resident")
        let program = "\(launcher.dir)/memory-job.py"
        try writeTextFile(program, MigrationBenchmark.memoryProgram)

        var rows: [Row] = []
        for size in sizes {
            let naive = try await naiveMigration(size: size, program: program, scratch: "\(launcher.dir)/naive-\(size)")
            progress("\(size) MiB naive: downtime = total = \(formatMs(naive)) ms (dump, cp -r, restore)")

            let ready = "\(launcher.dir)/ready-\(size)"
            unlink(ready)
            var request = RunRequest(argv: ["/usr/bin/python3", program, String(size), ready], env: ["PATH=/usr/bin:/bin"], cwd: launcher.dir)
            request.name = "bench-\(size)"
            let job = try await client.call("Migrator.Run", request, returning: Job.self)
            try await waitForFile(ready, seconds: 120)
            let baseline = migrators.map { residentKiB(of: $0) ?? 0 }
            for pid in migrators { try? writeTextFile("/proc/\(pid)/clear_refs", "5") }
            let moved = try await client.call("Migrator.Migrate", MigrateRequest(job: job.id, target: 2), returning: MigrateResponse.self, timeout: .seconds(900))
            let peaks = zip(migrators, baseline).map { pid, before in Double(max(0, (peakResidentKiB(of: pid) ?? before) - before)) / 1024 }
            let report = moved.report
            progress("\(size) MiB OMX: frozen \(report.freezeMs) ms, total \(report.totalMs) ms (\(report.mode)); Migrator peak extra memory \(formatMiB(peaks[0]))/\(formatMiB(peaks[1])) MiB")
            _ = try? await back.call("Migrator.Kill", KillRequest(job: job.id, signal: SIGKILL), returning: Job.self)
            rows.append(Row(
                mebibytes: size, naiveDowntimeMs: naive, naiveTotalMs: naive, omxFreezeMs: Double(report.freezeMs), omxTotalMs: Double(report.totalMs),
                mode: report.mode, imageBytes: report.bytes, sourcePeakExtraMiB: peaks[0], targetPeakExtraMiB: peaks[1]))
        }
        await client.close()
        await back.close()
        await loop.shutdown()
        return Report(rows: rows, idleMigratorMiB: idle)
    }

    /// The naive way, timed: the same job started the same way (omx-jobinit), `criu dump` into
    /// a folder, `cp -r` of the folder, `criu restore` from the copy. Returns milliseconds.
    private func naiveMigration(size: Int, program: String, scratch: String) async throws -> Double {
        removeTree(scratch)
        try makeDirectories("\(scratch)/spool")
        try makeDirectories("\(scratch)/dumped")
        let ready = "\(scratch)/ready"
        let start = try ChildProcess.spawn(siblingExecutable("omx-jobinit"), [
            "--spool", "\(scratch)/spool", "--cwd", scratch, "--uid", "0", "--gid", "0", "--pidfile", "\(scratch)/pid", "--",
            "/usr/bin/python3", program, String(size), ready,
        ])
        guard await start.wait(milliseconds: 10_000) == 0, let text = try? readTextFile("\(scratch)/pid"), let pid = Int32(text.trimmedWhitespace) else {
            throw ConfigError("the naive baseline's job did not start: \((try? readTextFile("\(scratch)/spool/stderr")) ?? "")")
        }
        try await waitForFile(ready, seconds: 120)
        let began = monotonicNs()
        try await runTool(criu, ["dump", "-t", String(pid), "-D", "\(scratch)/dumped", "-o", "dump.log"], what: "criu dump")
        try await runTool("/bin/cp", ["-r", "\(scratch)/dumped", "\(scratch)/copied"], what: "cp -r")
        try await runTool(criu, ["restore", "-D", "\(scratch)/copied", "-d", "--pidfile", "\(scratch)/restored.pid", "-o", "restore.log"], what: "criu restore")
        let elapsed = Double(monotonicNs() - began) / 1e6
        if let restored = (try? readTextFile("\(scratch)/restored.pid")).flatMap({ Int32($0.trimmedWhitespace) }) {
            kill(restored, SIGKILL)
            var status: Int32 = 0
            waitpid(restored, &status, 0)
        }
        removeTree(scratch)
        return elapsed
    }

    private func runTool(_ path: String, _ arguments: [String], what: String) async throws {
        let process = try ChildProcess.spawn(path, arguments, stdoutPath: "/dev/null", stderrPath: "/dev/null")
        guard let status = await process.wait(milliseconds: 600_000), status == 0 else {
            throw ConfigError("naive baseline: \(what) failed: \(arguments.joined(separator: " "))")
        }
    }

    private func waitForFile(_ path: String, seconds: Int) async throws {
        let deadline = monotonicNs() + UInt64(seconds) * 1_000_000_000
        while !fileExists(path) {
            guard monotonicNs() < deadline else { throw ConfigError("\(path) did not appear within \(seconds) s") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

func formatMiB(_ value: Double) -> String { String(format: value, decimals: 1) }
func formatMs(_ value: Double) -> String { String(format: value, decimals: 0) }
