import Foundation
import Shared
import XCTest

@testable import Migrator

/// The Migrator's registry on disk, and how a cluster listing picks each job's record.
final class JobStoreTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "omx-store-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() {
        removeTree(dir)
    }

    private func job(_ id: String, where node: UInt32, state: JobState = .running) -> Job {
        var job = Job()
        job.id = id
        job.home = UInt32(id.split(separator: ".")[0])!
        job.where = node
        job.state = state
        job.argv = ["sh", "-c", "echo ü"]
        job.lastMigration = MigrationReport()
        job.startedOn = node
        job.execNodes = [2: node, 7: 3]
        return job
    }

    func testJobsOutcomesAndTheCounterSurviveAReopen() throws {
        var store = try JobStore(stateDir: dir)
        XCTAssertEqual(try store.nextJobNumber(), 1)
        XCTAssertEqual(try store.nextJobNumber(), 2)
        try store.save(job("1.1", where: 2))
        try store.save(job("1.2", where: 1, state: .exited))
        var incoming = job("3.4", where: 1, state: .migrating)
        incoming.transfer = "3.4-99"
        try store.saveIncoming(incoming)
        try store.recordOutcome("1.1-5", .committed)
        try store.recordOutcome("1.1-6", .aborted)
        try "garbage".write(toFile: "\(dir)/jobs/9.9.job", atomically: true, encoding: .utf8)

        store = try JobStore(stateDir: dir)
        let (jobs, unreadable) = store.loadJobs()
        XCTAssertEqual(jobs.sorted { jobOrder($0.id, $1.id) }, [job("1.1", where: 2), job("1.2", where: 1, state: .exited)])
        XCTAssertEqual(unreadable.count, 1)
        XCTAssertTrue(unreadable[0].contains("9.9.job"), unreadable[0])
        XCTAssertEqual(store.loadIncoming().jobs, [incoming])
        XCTAssertEqual(try store.nextJobNumber(), 3)
        XCTAssertEqual(store.outcome(of: "1.1-5"), .committed)
        XCTAssertEqual(store.outcome(of: "1.1-6"), .aborted)
        XCTAssertEqual(store.outcome(of: "1.1-7"), .undecided)
        // A week on, the decisions go; a recent one stays.
        try store.recordOutcome("1.1-8", .committed)
        var weekOld = [timespec(tv_sec: time(nil) - JobStore.outcomeRetentionSeconds - 60, tv_nsec: 0)]
        weekOld.append(weekOld[0])
        for transfer in ["1.1-5", "1.1-6"] { XCTAssertEqual(utimensat(AT_FDCWD, "\(dir)/outcomes/\(transfer)", weekOld, 0), 0) }
        XCTAssertEqual(store.pruneOutcomes(), 2)
        XCTAssertEqual(store.outcome(of: "1.1-5"), .undecided)
        XCTAssertEqual(store.outcome(of: "1.1-8"), .committed)
        store.remove("1.1")
        store.removeIncoming("3.4-99")
        XCTAssertEqual(store.loadJobs().jobs.map(\.id), ["1.2"])
        XCTAssertTrue(store.loadIncoming().jobs.isEmpty)
    }

    func testAClusterListingTakesEachJobFromWhereItRunsElseFromItsHome() {
        let atHome = job("1.1", where: 2)
        var running = job("1.1", where: 2)
        running.pid = 4242
        let ended = job("1.2", where: 3, state: .exited)
        var staleGuest = job("1.2", where: 3)
        staleGuest.pid = 7
        let merged = mergeJobReports([(1, [atHome, ended]), (2, [running]), (3, [])])
        XCTAssertEqual(merged.map(\.id), ["1.1", "1.2"])
        XCTAssertEqual(merged[0].pid, 4242, "the record of the node it runs on")
        XCTAssertEqual(merged[1].state, .exited, "an ended job comes from its home")
        XCTAssertEqual(mergeJobReports([(3, [staleGuest]), (1, [ended])])[0].state, .running, "a running copy's own record wins")
        XCTAssertTrue(jobOrder("1.2", "1.10"))
        XCTAssertTrue(jobOrder("1.10", "2.1"))
    }
}
