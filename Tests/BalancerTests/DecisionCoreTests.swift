import Shared
import XCTest

@testable import Balancer

/// The decision core on its own: when a job moves, where, and when it must not.
final class DecisionCoreTests: XCTestCase {
    private var random = SystemRandomNumberGenerator()
    private let configuration = BalancerConfiguration()
    private let now: UInt64 = 1_000_000

    private func node(_ id: UInt32, load: Double, cpus: UInt32 = 2, speed: UInt32 = 1000, free: UInt64 = 8 << 30, policy: NodePolicy = NodePolicy()) -> NodeLoad {
        NodeLoad(node: id, load: load, cpus: cpus, speed: speed, freeMemory: free, totalMemory: 16 << 30, policy: policy, sampledMs: now)
    }

    private func jobs(_ count: Int, home: UInt32 = 1, rss: UInt64 = 4 << 20, ageMs: UInt64 = 60_000) -> [JobSample] {
        (1...count).map { JobSample(job: "\(home).\($0)", home: home, demand: 1, rssBytes: rss, ageMs: ageMs, residentMs: ageMs) }
    }

    private func decide(_ own: NodeLoad, _ jobs: [JobSample], _ peers: [NodeLoad]) -> Decision? {
        DecisionCore.decide(own: own, jobs: jobs, peers: peers, configuration: configuration, nowMs: now, random: &random)
    }

    func testNoMoveBelowTheThresholdAndAMoveAboveIt() {
        XCTAssertNil(decide(node(1, load: 2), jobs(2), [node(2, load: 1)]), "2 vs 1: moving one job only swaps the imbalance")
        XCTAssertNil(decide(node(1, load: 1.2), jobs(1), [node(2, load: 0.9)]))
        let decision = decide(node(1, load: 3), jobs(3), [node(2, load: 1), node(3, load: 2)])
        XCTAssertEqual(decision?.target, 2, "to the least loaded node")
        XCTAssertTrue(decision?.reason.hasPrefix("load: 1.50 here vs 0.50 on node 2") == true, decision?.reason ?? "")
    }

    func testSpeedAndCPUsCountInTheLoad() {
        // Node 2 is twice as fast: 2 jobs there weigh like 1 here.
        XCTAssertEqual(decide(node(1, load: 3, cpus: 1), jobs(3), [node(2, load: 2, cpus: 1, speed: 2000)])?.target, 2)
        XCTAssertNil(decide(node(1, load: 2, cpus: 2), jobs(2), [node(2, load: 0, cpus: 1, speed: 250)]), "a slow node gains nothing")
    }

    func testYoungCheapAndPinnedJobsStay() {
        XCTAssertNil(decide(node(1, load: 4), jobs(4, ageMs: 300), [node(2, load: 0)]), "too young to be worth the move")
        var pinned = jobs(4)
        for index in pinned.indices { if index % 2 == 0 { pinned[index].lock = true } else { pinned[index].stay = true } }
        XCTAssertNil(decide(node(1, load: 4), pinned, [node(2, load: 0)]), "locked and stay jobs never move automatically")
        var unmovable = jobs(4)
        for index in unmovable.indices.dropLast() { unmovable[index].cantmove = true }
        XCTAssertEqual(decide(node(1, load: 4), unmovable, [node(2, load: 0)])?.job, "1.4", "what CRIU cannot move now is not chosen")
        unmovable[3].cantmove = true
        XCTAssertNil(decide(node(1, load: 4), unmovable, [node(2, load: 0)]), "nothing CRIU can move")
        var big = jobs(4, rss: 4 << 30, ageMs: 20_000)
        XCTAssertNil(decide(node(1, load: 4), big, [node(2, load: 0)]), "moving 4 GiB costs more than a 20 s old job is expected to gain")
        big[0].ageMs = 3_600_000
        XCTAssertEqual(decide(node(1, load: 4), big, [node(2, load: 0)])?.job, "1.1", "an old job is worth it")
        var fresh = jobs(4)
        for index in fresh.indices { fresh[index].residentMs = 500 }
        XCTAssertNil(decide(node(1, load: 4), fresh, [node(2, load: 0)]), "minimum residence time")
    }

    func testMemoryUsheringSendsTheLargestJobWhereMemoryIsPlentiful() {
        var list = jobs(2)
        list[1].rssBytes = 900 << 20
        let decision = decide(node(1, load: 2, free: 512 << 20), list, [node(2, load: 2, free: 2 << 30), node(3, load: 1, free: 12 << 30)])
        XCTAssertEqual(decision?.job, "1.2")
        XCTAssertEqual(decision?.target, 3)
        XCTAssertTrue(decision?.reason.hasPrefix("memory ushering") == true, decision?.reason ?? "")
    }

    func testIOLocalityDrawsAJobTowardItsData() {
        var list = jobs(1)
        list[0].ioBytes = [3: 800 << 20, 1: 200 << 20]
        let decision = decide(node(1, load: 1), list, [node(2, load: 0), node(3, load: 1)])
        XCTAssertEqual(decision?.target, 3, "to node 3 where 80 % of its I/O goes, though node 2 is idler")
        XCTAssertTrue(decision?.reason.hasPrefix("I/O locality: 80 %") == true, decision?.reason ?? "")
        XCTAssertNil(decide(node(1, load: 1), list, [node(3, load: 4)]), "not onto a much busier node")
        list[0].ioBytes = [3: 800 << 10, 1: 200 << 10]
        XCTAssertNotEqual(decide(node(1, load: 1), list, [node(2, load: 0), node(3, load: 1)])?.reason.hasPrefix("I/O locality"), true, "a trickle draws nothing")
    }

    func testBlockedQuietAndStaleNodesAreNeverChosen() {
        let blocked = node(2, load: 0, policy: NodePolicy(block: true))
        let quiet = node(3, load: 0, policy: NodePolicy(quiet: true))
        var stale = node(4, load: 0)
        stale.sampledMs = now - 10_000
        XCTAssertNil(decide(node(1, load: 4), jobs(4), [blocked, quiet, stale]))
        XCTAssertNil(decide(node(1, load: 4, policy: NodePolicy(stay: true)), jobs(4), [node(2, load: 0)]), "stay: nothing leaves")
        XCTAssertNil(decide(node(1, load: 4, policy: NodePolicy(lstay: true)), jobs(4), [node(2, load: 0)]), "lstay: local jobs stay")
        XCTAssertNotNil(decide(node(1, load: 4, policy: NodePolicy(lstay: true)), jobs(4, home: 5), [node(2, load: 0)]), "lstay: guests may go")
    }

    func testANewJobStartsOnTheLightestKnownNodeUnlessHomeIsAsLight() {
        var placeRandom = SystemRandomNumberGenerator()
        func place(_ own: NodeLoad, _ peers: [NodeLoad]) -> UInt32 {
            DecisionCore.place(demand: 1, own: own, peers: peers, configuration: configuration, nowMs: now, random: &placeRandom)
        }
        XCTAssertEqual(place(node(1, load: 4), [node(2, load: 3), node(3, load: 0)]), 3)
        XCTAssertEqual(place(node(1, load: 1), [node(2, load: 1)]), 1, "as light: stay home")
        XCTAssertEqual(place(node(1, load: 4, cpus: 1), [node(2, load: 4, cpus: 1, speed: 4000)]), 2, "a much faster node is lighter")
        XCTAssertEqual(place(node(1, load: 4), [node(2, load: 0, policy: NodePolicy(block: true))]), 1, "never onto a blocked node")
        var stale = node(3, load: 0)
        stale.sampledMs = now - 60_000
        XCTAssertEqual(place(node(1, load: 4), [stale]), 1, "never from a stale record")
    }

    func testAPlacementProbesTheLightestLookingPeersThatCouldTakeTheJob() {
        var config = configuration
        config.placementProbes = 2
        var stale = node(6, load: 0)
        stale.sampledMs = now - 60_000
        let peers = [node(2, load: 3), node(3, load: 0), node(4, load: 1, speed: 4000), node(5, load: 0, policy: NodePolicy(block: true)), stale]
        XCTAssertEqual(
            DecisionCore.probeCandidates(demand: 1, own: node(1, load: 4), peers: peers, configuration: config, nowMs: now), [4, 3],
            "the two lightest per reference CPU; never blocked or stale ones")
        XCTAssertEqual(DecisionCore.probeCandidates(demand: 1, own: node(1, load: 4, policy: NodePolicy(quiet: true)), peers: peers, configuration: config, nowMs: now), [])
    }

    func testTheWindowOffersOnlyAliveFreshNodesAndKeepsTheFreshestRecord() {
        var window = LoadWindow(capacity: 2, staleAfterMs: 5_000)
        window.insert(NodeLoad(node: 2, load: 1, cpus: 1, speed: 1000, freeMemory: 0, totalMemory: 0, sampledMs: 100))
        window.insert(NodeLoad(node: 2, load: 5, cpus: 1, speed: 1000, freeMemory: 0, totalMemory: 0, sampledMs: 50))
        XCTAssertEqual(window.records[2]?.load, 1, "an older record does not replace a newer one")
        window.insert(NodeLoad(node: 3, load: 0, cpus: 1, speed: 1000, freeMemory: 0, totalMemory: 0, sampledMs: 200))
        window.insert(NodeLoad(node: 4, load: 0, cpus: 1, speed: 1000, freeMemory: 0, totalMemory: 0, sampledMs: 300))
        XCTAssertEqual(Set(window.records.keys), [3, 4], "full: the stalest record made room")
        XCTAssertEqual(window.eligible(alive: [3]).map(\.node), [3], "dead, left, suspect and mismatched nodes are not offered")
        window.assume(1, movedTo: 3)
        XCTAssertEqual(window.records[3]?.load, 1)
        window.expire(nowMs: 5_250)
        XCTAssertEqual(Set(window.records.keys), [4])
    }

    func testOscillatingLoadDoesNotMakeJobsPingPong() {
        // Two equal nodes whose background load swings between 0 and 1.5 every second, seen
        // through the service's smoothing (4 samples a second). Jobs may move, but never back
        // and forth within their growing residence time.
        var loads: [UInt32: [JobSample]] = [1: jobs(3), 2: []]
        var smoothed: [UInt32: DecayingAverage] = [1: DecayingAverage(decay: 0.8), 2: DecayingAverage(decay: 0.8)]
        var lastMove: [String: Int] = [:]
        var bounces = 0
        var moves = 0
        for second in 0..<120 {
            let background: [UInt32: Double] = second % 2 == 0 ? [1: 1.5, 2: 0] : [1: 0, 2: 1.5]
            for node in [UInt32(1), 2] {
                for _ in 0..<4 { smoothed[node]!.add(background[node]! + Double(loads[node]!.count)) }
            }
            for source in [UInt32(1), 2] {
                let target: UInt32 = source == 1 ? 2 : 1
                guard let decision = decide(node(source, load: smoothed[source]!.value), loads[source]!, [node(target, load: smoothed[target]!.value)]) else { continue }
                var moved = loads[source]!.first { $0.job == decision.job }!
                loads[source]!.removeAll { $0.job == decision.job }
                moved.residentMs = 0
                moved.migrations += 1
                loads[target]!.append(moved)
                if let previous = lastMove[decision.job], (second - previous) * 1000 < Int(configuration.minResidenceMs) { bounces += 1 }
                lastMove[decision.job] = second
                moves += 1
            }
            for node in [UInt32(1), 2] { loads[node] = loads[node]!.map { var job = $0; job.residentMs += 1000; return job } }
        }
        XCTAssertEqual(bounces, 0)
        XCTAssertLessThan(moves, 20, "a swinging background moves jobs rarely (\(moves) moves in 120 s)")
        XCTAssertGreaterThan(moves, 0, "but the real imbalance (3 jobs vs none) is fixed")
    }
}
