import Shared
import XCTest

@testable import Migrator

/// When a job's home may start it elsewhere after asking a node to run it failed.
final class StartOutcomeTests: XCTestCase {
    func testOnlyALostAnswerLeavesTheOutcomeOpen() {
        XCTAssertTrue(MigratorService.mayHaveRun(RPCError(.deadlineExceeded, "no answer within 15000 ms")))
        XCTAssertTrue(MigratorService.mayHaveRun(RPCError(.unavailable, "connection lost")))
        XCTAssertTrue(MigratorService.mayHaveRun(RPCError(.dataLoss, "bad response")))
        XCTAssertFalse(MigratorService.mayHaveRun(RPCError(.unavailable, "connect: ECONNREFUSED", neverSent: true)), "never sent")
        XCTAssertFalse(MigratorService.mayHaveRun(RPCError(.failedPrecondition, "node 2 blocks guest jobs")), "the node said no")
        XCTAssertFalse(MigratorService.mayHaveRun(RPCError(.notFound, "command not found")))
        XCTAssertFalse(MigratorService.mayHaveRun(RPCError(.internal, "started but could not be recorded, so it was stopped")))
    }
}
