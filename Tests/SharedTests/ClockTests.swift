import XCTest

@testable import Shared

/// Durations in whole units: truncated, 0 when negative, saturated when too long; never a trap.
final class ClockTests: XCTestCase {
    func testDurationsInWholeUnitsTruncateSaturateAndNeverTrap() {
        XCTAssertEqual(Duration.microseconds(1_500).milliseconds, 1)
        XCTAssertEqual(Duration.nanoseconds(1_500).nanoseconds, 1_500)
        XCTAssertEqual(Duration.seconds(3).nanoseconds, 3_000_000_000)
        XCTAssertEqual(Duration.seconds(Int64.max).milliseconds, .max)
        XCTAssertEqual(Duration.seconds(Int64.max).nanoseconds, .max)
        for negative in [Duration.microseconds(-1), .milliseconds(-5), .seconds(-2), .nanoseconds(-1)] {
            XCTAssertEqual(negative.milliseconds, 0, "\(negative)")
            XCTAssertEqual(negative.nanoseconds, 0, "\(negative)")
        }
    }
}
