import XCTest

@testable import Shared

/// Which failed calls may have been made anyway (a job's home starting it elsewhere, a mount
/// sending an append again, decide by it).
final class RPCErrorTests: XCTestCase {
    func testOnlyALostAnswerLeavesTheOutcomeOpen() {
        XCTAssertTrue(RPCError(.deadlineExceeded, "no answer within 15000 ms").outcomeUnknown)
        XCTAssertTrue(RPCError(.unavailable, "connection lost").outcomeUnknown)
        XCTAssertTrue(RPCError(.dataLoss, "bad response").outcomeUnknown)
        XCTAssertFalse(RPCError(.unavailable, "connect: ECONNREFUSED", neverSent: true).outcomeUnknown, "never sent")
        XCTAssertFalse(RPCError(.failedPrecondition, "node 2 blocks guest jobs").outcomeUnknown, "the node said no")
        XCTAssertFalse(RPCError(.notFound, "command not found").outcomeUnknown)
        XCTAssertFalse(RPCError(.internal, "started but could not be recorded, so it was stopped").outcomeUnknown)
    }
}
