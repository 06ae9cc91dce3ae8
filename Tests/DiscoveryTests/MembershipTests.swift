import Shared
import XCTest

@testable import Discovery

final class MembershipTests: XCTestCase {
    private var random = SystemRandomNumberGenerator()

    private func membership(_ selfID: UInt32 = 1, nodes: [UInt32] = [1, 2, 3, 4]) -> Membership {
        Membership(selfID: selfID, nodeIDs: nodes, mapDigest: "d", version: "v", incarnation: 100)
    }

    private func update(_ id: UInt32, _ state: MemberState, _ incarnation: UInt64, registry: UInt64 = 0, services: [ServiceInstance] = []) -> MemberUpdate {
        MemberUpdate(nodeID: id, state: state, incarnation: incarnation, mapDigest: "d", version: "v", registryVersion: registry, services: services)
    }

    func testOtherNodesStartDeadAndNeverHeard() {
        let view = membership()
        XCTAssertEqual(view.members[2]?.state, .dead)
        XCTAssertEqual(view.members[2]?.lastHeardMs, 0)
        XCTAssertEqual(view.own.state, .alive)
    }

    func testAnAliveUpdateWithAHigherIncarnationRevivesADeadMember() {
        var view = membership()
        XCTAssertTrue(view.apply(update(2, .alive, 5), nowMs: 0))
        XCTAssertEqual(view.members[2]?.state, .alive)
        view.apply(update(2, .dead, 5), nowMs: 0)
        XCTAssertEqual(view.members[2]?.state, .dead)
        XCTAssertFalse(view.apply(update(2, .alive, 5), nowMs: 0), "at equal incarnation dead beats alive")
        XCTAssertTrue(view.apply(update(2, .alive, 6), nowMs: 0), "a restarted member rejoins with a higher incarnation")
        XCTAssertEqual(view.members[2]?.state, .alive)
    }

    func testASuspectBecomesDeadWhenItsSuspicionRunsOut() {
        var view = membership()
        view.apply(update(2, .alive, 5), nowMs: 0)
        view.probeFailed(2, nowMs: 1_000)
        XCTAssertEqual(view.members[2]?.state, .suspect)
        let timeout = suspicionTimeoutMs(members: 4, view.configuration)
        view.tick(nowMs: 1_000 + timeout - 1)
        XCTAssertEqual(view.members[2]?.state, .suspect)
        view.tick(nowMs: 1_000 + timeout)
        XCTAssertEqual(view.members[2]?.state, .dead)
    }

    func testASuspectedNodeRefutesWithAHigherIncarnationAndTheOthersAcceptIt() {
        var suspected = membership(2)
        var other = membership(1)
        other.apply(update(2, .alive, 100), nowMs: 0)
        other.probeFailed(2, nowMs: 0)
        let gossip = other.piggyback()
        XCTAssertTrue(gossip.contains { $0.nodeID == 2 && $0.state == .suspect })
        suspected.apply(gossip, nowMs: 0)
        XCTAssertEqual(suspected.own.incarnation, 101, "the suspected node raises its incarnation")
        other.apply(suspected.piggyback(), nowMs: 10)
        XCTAssertEqual(other.members[2]?.state, .alive)
        XCTAssertEqual(other.members[2]?.incarnation, 101)
    }

    func testALeftMemberStaysLeftUntilItRejoins() {
        var view = membership()
        view.apply(update(3, .alive, 7), nowMs: 0)
        view.apply(update(3, .left, 8), nowMs: 0)
        XCTAssertEqual(view.members[3]?.state, .left)
        XCTAssertFalse(view.apply(update(3, .dead, 8), nowMs: 0))
        XCTAssertEqual(view.members[3]?.state, .left)
        view.apply(update(3, .alive, 9), nowMs: 0)
        XCTAssertEqual(view.members[3]?.state, .alive)
    }

    func testIncarnationsNoRealNodeReachesAreRefusedRatherThanOverflowing() {
        var view = membership()
        view.apply(update(2, .alive, 7), nowMs: 0)
        XCTAssertFalse(view.apply(update(1, .dead, UInt64.max), nowMs: 0), "refuting it would overflow")
        XCTAssertFalse(view.apply(update(1, .dead, Membership.incarnationLimit), nowMs: 0))
        XCTAssertEqual(view.own.incarnation, 100)
        XCTAssertFalse(view.apply(update(2, .left, UInt64.max - 1), nowMs: 0), "a made-up incarnation no refutation could beat")
        XCTAssertEqual(view.members[2]?.state, .alive)
        XCTAssertTrue(view.apply(update(1, .dead, 100), nowMs: 0), "real suspicions are still refuted")
        XCTAssertEqual(view.own.incarnation, 101)
    }

    func testServicesSpreadWithTheRegistryVersion() {
        var node2 = membership(2)
        var node1 = membership(1)
        let gateway = ServiceInstance(kind: "fsgateway", instance: 0, nodeID: 2, address: "127.0.0.2", port: 7710, unixPath: "/run/omx/fsgateway-0.sock", pid: 42)
        node1.apply(node2.piggyback(), nowMs: 0)
        node2.setServices([gateway])
        node1.apply(node2.piggyback(), nowMs: 1)
        XCTAssertEqual(node1.members[2]?.services, [gateway])
        node2.setServices([])
        node1.apply(node2.piggyback(), nowMs: 2)
        XCTAssertEqual(node1.members[2]?.services, [])
    }

    func testProbingGoesRoundRobinOverLiveMembersOnly() {
        var view = membership(1, nodes: [1, 2, 3, 4, 5])
        for id: UInt32 in [2, 3, 4] { view.apply(update(id, .alive, 1), nowMs: 0) }
        var targets: [UInt32] = []
        for _ in 0..<6 {
            if let target = view.nextProbeTarget(using: &random) { targets.append(target) }
        }
        XCTAssertEqual(Set(targets.prefix(3)), [2, 3, 4], "each live member once per round-robin pass")
        XCTAssertFalse(targets.contains(5), "a never-heard (dead) member is probed only every \(view.configuration.deadProbeEveryRounds) rounds")
    }

    func testEachUpdateIsPiggybackedALimitedNumberOfTimes() {
        var view = membership(1, nodes: Array(1...10))
        view.apply(update(2, .alive, 1), nowMs: 0)
        var sends = 0
        for _ in 0..<50 where view.piggyback().contains(where: { $0.nodeID == 2 }) { sends += 1 }
        XCTAssertEqual(sends, retransmitLimit(members: 10, view.configuration))
    }

    func testTheSuspicionTimeoutGrowsWithTheClusterAndHasAFloor() {
        let configuration = SWIMConfiguration()
        XCTAssertEqual(suspicionTimeoutMs(members: 5, configuration), configuration.suspicionMinMs)
        XCTAssertGreaterThan(suspicionTimeoutMs(members: 10_000, configuration), suspicionTimeoutMs(members: 100, configuration))
    }
}
