import Foundation
import Logging
import Shared
import XCTest

/// What the Migrator tests need beyond a running cluster: root and a working CRIU, job copies
/// as /proc shows them, and Migrators restarted with other settings.
extension DiscoveryCluster {
    /// Fails the test loudly (instead of passing silently) when jobs cannot be checkpointed here.
    static func requireCRIU() throws {
        guard getuid() == 0 else {
            XCTFail("the Migrator tests need root (CRIU and PID namespaces); run them as root: sudo scripts/test.sh")
            throw XCTSkip("not root")
        }
        guard criuPath != nil else {
            XCTFail("no omx-criu or criu in PATH (scripts/setup.sh installs CRIU 4.1.1); the Migrator tests cannot run")
            throw XCTSkip("no criu")
        }
    }

    /// The CRIU the Migrators use, as they find it.
    static var criuPath: String? {
        ["/usr/local/bin/omx-criu", "/usr/local/sbin/omx-criu", "/usr/sbin/criu", "/usr/bin/criu"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    var migratorArguments: (Int) -> [String] {
        { node in
            ["--map", self.mapPath, "--key", self.keyPath, "--node-id", "\(node)", "--run-dir", self.runDir(node),
             "--state-dir", "\(self.dir)/node-\(node)/state", "--spool-dir", "\(self.dir)/node-\(node)/spool"]
        }
    }

    /// Replaces node `node`'s Migrator (SIGKILL, so it sends nobody away) with one started with
    /// `extra` options and `environment`, and waits until it answers.
    func restartMigrator(_ node: Int, extra: [String] = [], environment: [String: String] = [:]) async throws {
        if let pid = pid(node, "migrator") {
            kill(pid, SIGKILL)
            while kill(pid, 0) == 0 && !isZombie(pid) { usleep(10_000) }
        }
        let logPath = "\(dir)/node-\(node)/log/migrator.log"
        let process = try ChildProcess.spawn(
            siblingExecutable("omx-migrator"), migratorArguments(node) + extra, stdoutPath: logPath, stderrPath: logPath,
            environment: environment, detached: true)
        try "\(process.pid)\n".write(toFile: "\(runDir(node))/migrator.pid", atomically: true, encoding: .utf8)
        let answered = await waitFor(seconds: 10) { self.omx(["ping", "migrator"], runDir: node).status == 0 }
        XCTAssertNotNil(answered, "node \(node)'s Migrator answers after its restart: \(log(node, "migrator").suffix(500))")
    }

    /// Starts `command` as a job from node `node`; returns its id.
    func run(_ command: [String], from node: Int = 1, options: [String] = []) throws -> String {
        let result = omx(["run"] + options + ["--"] + command, runDir: node)
        guard result.status == 0 else { throw ConfigError("omx run failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The cluster's jobs as `omx mps --json` prints them.
    func jobs(seenBy node: Int = 1) -> [[String: Any]] {
        let result = omx(["mps", "--json"], runDir: node)
        return (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [[String: Any]] ?? []
    }

    func job(_ id: String, seenBy node: Int = 1) -> [String: Any]? {
        jobs(seenBy: node).first { $0["job"] as? String == id }
    }

    func spool(of id: String) -> String {
        "\(dir)/node-\(id.split(separator: ".")[0])/spool/\(id)"
    }

    /// The job's output so far.
    func output(of id: String) -> String {
        (try? String(contentsOfFile: "\(spool(of: id))/stdout", encoding: .utf8)) ?? ""
    }

    /// The host processes that are a copy of job `id` (its namespace init, whose command line
    /// CRIU restores), with whether each is stopped.
    func copies(of id: String) -> [(pid: pid_t, stopped: Bool)] {
        let spool = spool(of: id)
        var result: [(pid_t, Bool)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), jobInitSpool(of: pid) == spool else { continue }
            guard let state = ProcStat(pid: pid)?.state, state != "Z", state != "X" else { continue }
            result.append((pid, state == "T" || state == "t"))
        }
        return result
    }

    /// Ends counting job `id` with SIGKILL and checks that its output counted up whole.
    func killAndCheckCount(of id: String, file: StaticString = #filePath, line: UInt = #line) async {
        _ = omx(["kill", "-KILL", id])
        let ended = await waitForEnd(of: id)
        XCTAssertEqual(ended?["state"] as? String, "exited", file: file, line: line)
        assertCountsUp(output(of: id), file: file, line: line)
    }

    /// Waits for job `id` to end; its `omx mps` record.
    func waitForEnd(of id: String, seconds: Double = 60) async -> [String: Any]? {
        var record: [String: Any]?
        _ = await waitFor(seconds: seconds) {
            record = self.job(id)
            return record?["state"] as? String == "exited"
        }
        return record
    }
}

func isZombie(_ pid: pid_t) -> Bool { ProcStat(pid: pid)?.state == "Z" }

/// Checks that a counting job's output is 1, 2, 3 ... with no number missing or repeated.
func assertCountsUp(_ output: String, file: StaticString = #filePath, line: UInt = #line) {
    let numbers = output.split(separator: "\n").map { Int($0) ?? -1 }
    XCTAssertFalse(numbers.isEmpty, "the job wrote nothing", file: file, line: line)
    for (index, number) in numbers.enumerated() where number != index + 1 {
        return XCTFail("line \(index + 1) is \(number): the output lost or repeated a number", file: file, line: line)
    }
}
