import Foundation
import Shared
import XCTest

/// The Python client in clients/python, generated from proto/ by the standard protobuf
/// compiler, and its example programs against live clusters: the contract works outside Swift.
final class PythonClientEndToEndTests: XCTestCase {
    private let clientDir = PythonClient.directory

    /// Runs example `name` (e.g. "mps.py") of clients/python with Debian's Python.
    private func example(_ name: String, _ arguments: [String]) -> CommandResult {
        LocalCluster.runAbsolute(PythonClient.python, ["-B", "\(clientDir)/\(name)"] + arguments)
    }

    func testThePythonClientAuthenticatesAndPrintsTheMembership() async throws {
        try PythonClient.requireAndGenerate()
        let selfTest = example("print_members.py", ["--self-test"])
        XCTAssertEqual(selfTest.status, 0, selfTest.stdout + selfTest.stderr)

        let cluster = try DiscoveryCluster(subnet: 38, nodes: 3)
        let ready = await cluster.waitFor(seconds: 10) {
            for node in 1...3 where (await cluster.members(seenBy: node))?.members.allSatisfy({ $0.state == .alive }) != true { return false }
            return true
        }
        XCTAssertNotNil(ready)
        let overTCP = example("print_members.py", ["--map", cluster.mapPath, "--key", cluster.keyPath, "--node", "2", "--from-address", "127.0.38.1"])
        XCTAssertEqual(overTCP.status, 0, overTCP.stderr)
        XCTAssertEqual(overTCP.stdout, "1 127.0.38.1 alive \(omxVersion)\n2 127.0.38.2 alive \(omxVersion)\n3 127.0.38.3 alive \(omxVersion)\n")
        let overUnix = example("print_members.py", ["--unix", "\(cluster.runDir(3))/discovery.sock"])
        XCTAssertEqual(overUnix.stdout, overTCP.stdout, overUnix.stderr)

        let wrongKey = cluster.dir + "/wrong.key"
        try ClusterKey.generate().write(to: wrongKey, overwrite: false)
        let refused = example("print_members.py", ["--map", cluster.mapPath, "--key", wrongKey, "--node", "2", "--from-address", "127.0.38.1"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("UNAUTHENTICATED"), refused.stderr)
        await cluster.down()
    }

    /// The row of job `id` in mps.py's output, split at blanks (STATE "signal 15" is two cells).
    private func mpsRow(_ listing: String, job id: String) -> [String]? {
        listing.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.first { $0.first == id }
    }

    /// Cell `index` of a row, or nil (never a crash) when there is none.
    private func cell(_ row: [String]?, _ index: Int) -> String? {
        guard let row, index < row.count else { return nil }
        return row[index]
    }

    func testThePythonExamplesRunMigrateAndKillAJobAndCopyFilesThroughTheGateways() async throws {
        try DiscoveryCluster.requireCRIU()
        try PythonClient.requireAndGenerate()
        let cluster = try DiscoveryCluster(subnet: 39, nodes: 3)
        let tcp = ["--map", cluster.mapPath, "--key", cluster.keyPath, "--from-address", "127.0.39.1"]

        // run_job.py over TCP: a counter whose home is node 1 (--stay: only moved by hand).
        let started = example("run_job.py", tcp + ["--node", "1", "--on", "1", "--stay", "--name", "counter", "--",
                                                    "/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done"])
        XCTAssertEqual(started.status, 0, started.stderr)
        let job = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(job.hasPrefix("1."), "node 1 is the job's home: \(started.stdout)")

        // mps.py, asking node 3 over TCP, agrees with omx mps.
        let listed = example("mps.py", tcp + ["--node", "3"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertEqual(listed.stdout.split(separator: "\n").first?.split(separator: " ").map(String.init), ["JOB", "HOME", "WHERE", "PID", "STATE", "CMD"])
        let before = mpsRow(listed.stdout, job: job)
        XCTAssertEqual(cell(before, 1), "1", "HOME: \(listed.stdout)")
        XCTAssertEqual(cell(before, 2), "1", "WHERE: \(listed.stdout)")
        XCTAssertEqual(cell(before, 4), "running", listed.stdout)
        XCTAssertEqual(before?.dropFirst(5).joined(separator: " "), "[counter] /bin/sh -c i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done")
        XCTAssertEqual(cell(before, 3).flatMap { Int($0) }, cluster.job(job)?["pid"] as? Int, "mps.py shows the pid omx mps shows")

        // migrate_job.py over TCP (to the job's home, which moves it) to node 2; it runs on there.
        try await Task.sleep(for: .milliseconds(300))
        let moved = example("migrate_job.py", tcp + [job, "2"])
        XCTAssertEqual(moved.status, 0, moved.stderr)
        XCTAssertTrue(moved.stdout.hasPrefix("job \(job): node 1 -> node 2, pid "), moved.stdout)
        XCTAssertTrue(moved.stdout.contains(" bytes sent (") && moved.stdout.contains("), frozen "), moved.stdout)
        let afterMove = example("mps.py", ["--unix", "\(cluster.runDir(3))/migrator.sock"])
        XCTAssertEqual(afterMove.status, 0, afterMove.stderr)
        let movedRow = mpsRow(afterMove.stdout, job: job)
        XCTAssertEqual(cell(movedRow, 2), "2", "WHERE is node 2: \(afterMove.stdout)")
        XCTAssertEqual(cell(movedRow, 4), "running", afterMove.stdout)
        XCTAssertNotEqual(cell(movedRow, 3), cell(before, 3), "a new host pid on node 2")
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 2, "omx mps agrees")
        XCTAssertEqual(cluster.copies(of: job).filter { !$0.stopped }.count, 1, "exactly one running copy")
        let written = cluster.output(of: job).count
        let goesOn = await cluster.waitFor(seconds: 5) { cluster.output(of: job).count > written }
        XCTAssertNotNil(goesOn, "the counter still counts after the move")
        // stats.py: the source Migrator counted the committed migration (Stats over TCP).
        let stats = example("stats.py", tcp + ["--node", "1", "--service", "migrator"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        XCTAssertTrue(stats.stdout.contains("omx_migrations_total{outcome=\"committed\"} 1\n"), stats.stdout)
        XCTAssertTrue(stats.stdout.contains("omx_migration_freeze_seconds count=1 sum="), stats.stdout)
        let again = example("migrate_job.py", tcp + [job, "2"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("Migrator.Migrate to 127.0.39.1:7703: FAILED_PRECONDITION: job \(job) already runs on node 2"), again.stderr)

        // kill_job.py over TCP to node 3, which is neither home nor host: node 3 forwards to the
        // home (node 1), which forwards the signal to node 2.
        let killed = example("kill_job.py", tcp + ["--node", "3", job])
        XCTAssertEqual(killed.status, 0, killed.stderr)
        XCTAssertEqual(killed.stdout, "job \(job): sent signal 15 on node 2\n")
        let ended = await cluster.waitForEnd(of: job)
        XCTAssertEqual(ended?["exit"] as? String, "signal 15")
        let afterKill = mpsRow(example("mps.py", tcp + ["--node", "2"]).stdout, job: job)
        XCTAssertEqual(cell(afterKill, 3), "-", "no pid for an ended job")
        XCTAssertEqual(cell(afterKill, 4), "signal")
        XCTAssertEqual(cell(afterKill, 5), "15")
        XCTAssertTrue(cluster.copies(of: job).isEmpty)
        let killedAgain = example("kill_job.py", tcp + [job])
        XCTAssertEqual(killedAgain.status, 1)
        XCTAssertTrue(killedAgain.stderr.contains("FAILED_PRECONDITION: Migrator.Kill: job \(job) has ended (signal 15)"), killedAgain.stderr)

        // run_job.py --wait on node 2's Unix socket, started on node 3: Wait and ReadLog.
        let waited = example("run_job.py", ["--unix", "\(cluster.runDir(2))/migrator.sock", "--on", "3", "--wait", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
        XCTAssertEqual(waited.status, 3, waited.stderr)
        let lines = waited.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, waited.stdout)
        XCTAssertTrue(lines.first?.hasPrefix("2.") == true, "node 2 is the home: \(waited.stdout)")
        XCTAssertEqual(lines.last, "out")
        XCTAssertEqual(waited.stderr, "err\n")
        let notFound = example("run_job.py", tcp + ["--node", "2", "--", "/no/such/command"])
        XCTAssertEqual(notFound.status, 1)
        XCTAssertTrue(notFound.stderr.contains("Migrator.Run to 127.0.39.2:7703: NOT_FOUND: Migrator.Run: /no/such/command: no executable file there on node 2"), notFound.stderr)

        // mfs.py: a 2 MiB file (several 1 MiB chunks) written through node 2's gateway, read
        // back through node 3's, byte for byte; a directory through node 1's Unix socket.
        let disk = "\(cluster.dir)/files"
        XCTAssertNoThrow(try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true))
        let payload = Data((0..<(2 << 20) + 4321).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) })
        XCTAssertNoThrow(try payload.write(to: URL(fileURLWithPath: "\(disk)/local.bin")))
        let put = example("mfs.py", tcp + ["--node", "2", "put", "\(disk)/local.bin", "\(disk)/sub/remote.bin"])
        XCTAssertEqual(put.status, 1, "no directory sub yet")
        XCTAssertTrue(put.stderr.contains("FSGateway.Open to 127.0.39.2:7710: ENOENT: FSGateway.Open \(disk)/sub/remote.bin: No such file or directory"), put.stderr)
        let made = example("mfs.py", tcp + ["--node", "2", "mkdir", "\(disk)/sub"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let putAgain = example("mfs.py", tcp + ["--node", "2", "put", "\(disk)/local.bin", "\(disk)/sub/remote.bin"])
        XCTAssertEqual(putAgain.status, 0, putAgain.stderr)
        XCTAssertEqual(try? Data(contentsOf: URL(fileURLWithPath: "\(disk)/sub/remote.bin")), payload, "the gateway wrote the bytes to the disk")
        let got = example("mfs.py", tcp + ["--node", "3", "get", "\(disk)/sub/remote.bin", "\(disk)/back.bin"])
        XCTAssertEqual(got.status, 0, got.stderr)
        XCTAssertEqual(try? Data(contentsOf: URL(fileURLWithPath: "\(disk)/back.bin")), payload, "read back byte-identical")
        let listing = example("mfs.py", ["--unix", "\(cluster.runDir(1))/fsgateway-0.sock", "ls", "\(disk)/sub"])
        XCTAssertEqual(listing.status, 0, listing.stderr)
        XCTAssertTrue(listing.stdout.hasPrefix("-rw-"), "a regular file: \(listing.stdout)")
        XCTAssertTrue(listing.stdout.hasSuffix(" \(payload.count) remote.bin\n"), listing.stdout)
        // A name that is no UTF-8 (Latin-1 "é"): listed with its own bytes, not the wire form.
        let latin1 = (Array("\(disk)/sub/caf".utf8) + [0xE9, 0]).map { CChar(bitPattern: $0) }
        close(open(latin1, O_CREAT | O_WRONLY, 0o644))
        let listedFile = "\(cluster.dir)/listed.out"
        let named = LocalCluster.runAbsolute(
            "/bin/sh", ["-c", "\"$0\" -B \"$1\" --unix \"$2\" ls \"$3\" > \"$4\"", PythonClient.python, "\(clientDir)/mfs.py", "\(cluster.runDir(1))/fsgateway-0.sock", "\(disk)/sub", listedFile])
        XCTAssertEqual(named.status, 0, named.stderr)
        let bytes = (try? Data(contentsOf: URL(fileURLWithPath: listedFile))).map(Array.init) ?? []
        XCTAssertNotNil(bytes.firstRange(of: Array(" caf".utf8) + [0xE9, 0x0A]), "the byte E9 itself: \(bytes)")

        // Errors: a missing file (ENOENT naming the path), a wrong key (refused, nothing written).
        let missing = example("mfs.py", tcp + ["--node", "2", "cat", "\(disk)/missing.txt"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stdout, "")
        XCTAssertEqual(missing.stderr, "mfs: FSGateway.Open to 127.0.39.2:7710: ENOENT: FSGateway.Open \(disk)/missing.txt: open: No such file or directory\n")
        let removed = example("mfs.py", tcp + ["--node", "2", "rm", "\(disk)/sub/remote.bin"])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(disk)/sub/remote.bin"))
        let wrongKey = cluster.dir + "/wrong.key"
        try ClusterKey.generate().write(to: wrongKey, overwrite: false)
        let forged = ["--map", cluster.mapPath, "--key", wrongKey, "--from-address", "127.0.39.1"]
        let forgedPut = example("mfs.py", forged + ["--node", "2", "put", "\(disk)/local.bin", "\(disk)/forged.bin"])
        XCTAssertEqual(forgedPut.status, 1)
        XCTAssertTrue(forgedPut.stderr.contains("FSGateway.Open to 127.0.39.2:7710: UNAUTHENTICATED"), forgedPut.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(disk)/forged.bin"), "a wrong key writes nothing")
        let forgedRun = example("run_job.py", forged + ["--node", "1", "--", "/bin/true"])
        XCTAssertEqual(forgedRun.status, 1)
        XCTAssertTrue(forgedRun.stderr.contains("Migrator.Run to 127.0.39.1:7703: UNAUTHENTICATED"), forgedRun.stderr)
        XCTAssertEqual(cluster.jobs().count, 2, "a wrong key starts no job: \(cluster.jobs())")
        await cluster.down()
    }
}
