import Foundation
import Shared
import XCTest
@testable import Balancer

/// The [balancer] section of omx.conf against the decision core's defaults.
final class BalancerSettingsTests: XCTestCase {
    func testTheDocumentedDefaultsAreTheBalancersOwn() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("compose/omx.conf").path
        let uncommented = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "(?m)^# ([a-z_]+ = )", with: "$1", options: .regularExpression)
        let settings = try OMXConfig.parse(uncommented, source: path).balancer
        let documented = BalancerConfiguration(settings)
        let builtIn = BalancerConfiguration()
        XCTAssertEqual(documented.hysteresis, builtIn.hysteresis)
        XCTAssertEqual(documented.placementMargin, builtIn.placementMargin)
        XCTAssertEqual(documented.minResidenceMs, builtIn.minResidenceMs)
        XCTAssertEqual(documented.migrationBytesPerSecond, builtIn.migrationBytesPerSecond)
        XCTAssertEqual(documented.benefitOverCost, builtIn.benefitOverCost)
        XCTAssertEqual(documented.lowMemoryShare, builtIn.lowMemoryShare)
        XCTAssertEqual(documented.ioLocalityShare, builtIn.ioLocalityShare)
        XCTAssertEqual(documented.fanout, builtIn.fanout)
        XCTAssertEqual(documented.staleAfterMs, builtIn.staleAfterMs)
        XCTAssertEqual(documented.loadDecay, builtIn.loadDecay)
        XCTAssertEqual(settings.speed, 1000)
        XCTAssertEqual(settings.loadSource, LoadSource.machine.rawValue)
    }

    func testASettingOverridesOnlyItsOwnField() throws {
        let settings = try OMXConfig.parse("[balancer]\nhysteresis = 0.5\nfanout = 4\n", source: "t").balancer
        let configuration = BalancerConfiguration(settings)
        XCTAssertEqual(configuration.hysteresis, 0.5)
        XCTAssertEqual(configuration.fanout, 4)
        XCTAssertEqual(configuration.placementMargin, BalancerConfiguration().placementMargin)
    }
}
