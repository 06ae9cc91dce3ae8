import Shared
import XCTest

@testable import Migrator

/// What makes a job's start fail before omx-jobinit runs, each said with its culprit.
final class JobLauncherTests: XCTestCase {
    private func job(groups: [UInt32]) -> Job {
        var job = Job()
        job.argv = ["/bin/true"]
        job.cwd = "/"
        job.groups = groups
        return job
    }

    func testAJobTakesAsManySupplementaryGroupsAsOmxJobinitCanBeGiven() throws {
        XCTAssertNoThrow(try JobLauncher.validate(job(groups: (0..<UInt32(JobLauncher.maxGroups)).map { $0 + 1_000 })))
        XCTAssertThrowsError(try JobLauncher.validate(job(groups: (0...UInt32(JobLauncher.maxGroups)).map { $0 + 1_000 }))) { error in
            XCTAssertEqual((error as? RPCError)?.status, .invalidArgument)
            XCTAssertEqual((error as? RPCError)?.message, "Migrator.Run: 4097 supplementary groups; a job may have at most 4096")
        }
    }
}
