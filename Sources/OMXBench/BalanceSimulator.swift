import Balancer
import Glibc
import Shared

/// A cluster in virtual time for `omx bench balance`: nodes of mixed speeds, Poisson arrivals
/// of jobs with heavy-tailed CPU demand sharing each node's CPU equally (processor sharing),
/// placed and moved by one of several policies. The OMX policy runs the Balancer's own
/// decision core and load window, with gossip and migration costs as the service has them.
public struct BalanceSimulator {
    public enum Policy: String, CaseIterable, Sendable {
        /// Perfect, free, continuous balancing with global knowledge: with n jobs present, the
        /// min(n, N) fastest nodes are busy and the jobs share their capacity equally (each job
        /// uses one CPU at a time). No real placement does better: the lower bound.
        case ideal
        /// Jobs run where they arrive.
        case none
        /// Each job starts on a node picked at random.
        case random
        /// Each job starts on the less loaded of two random nodes (exact, free information).
        case powerOfTwo = "power-of-two"
        /// The OMX Balancer: each job starts where the decision core's placement puts it (from
        /// the home node's load window), and every node runs the decision core each second.
        case omx
    }

    public struct Options: Sendable {
        public var nodes = 64
        /// Offered load: arrival rate x mean work / total capacity.
        public var load = 0.7
        public var seed: UInt64 = 1
        public var arrivalSeconds = 200.0
        public var step = 0.25
        /// From `omx bench migrate`: a migration's fixed cost and throughput.
        public var migrationFixedMs = 200.0
        public var migrationMiBps = 300.0

        public init() {}
    }

    public struct Result: Sendable, Encodable {
        public let policy: String
        public let nodes: Int
        public let load: Double
        public let jobs: Int
        public let meanSlowdown: Double
        public let makespan: Double
        public let migrationsPerJob: Double
        public let messagesPerNodePerSecond: Double
    }

    struct SimJob {
        let arrival: Double
        let home: Int
        let work: Double
        let rssBytes: UInt64
        var remaining: Double
        var node = -1
        var arrivedAtNode = 0.0
        var frozenUntil = 0.0
        var migrations: UInt32 = 0
        var finished = -1.0
    }

    /// Bounded Pareto work in reference-CPU seconds: many short jobs, a few very long ones.
    static let workShape = 1.5, workMin = 0.5, workMax = 300.0

    public let options: Options
    let speeds: [UInt32]
    let workload: [SimJob]

    public init(options: Options) {
        self.options = options
        var random = SeededRandom(seed: options.seed)
        speeds = (0..<options.nodes).map { _ in
            let draw = Double.random(in: 0..<1, using: &random)
            return draw < 0.3 ? 500 : draw < 0.8 ? 1000 : 2000
        }
        let capacity = speeds.reduce(0.0) { $0 + Double($1) / 1000 }
        let rate = options.load * capacity / BalanceSimulator.meanWork
        var jobs: [SimJob] = []
        var time = 0.0
        while true {
            time += -log(1 - Double.random(in: 0..<1, using: &random)) / rate
            guard time < options.arrivalSeconds else { break }
            let work = BalanceSimulator.boundedPareto(Double.random(in: 0..<1, using: &random))
            let rss = UInt64(exp(Double.random(in: log(8.0)...log(1024.0), using: &random)) * 1_048_576)
            jobs.append(SimJob(arrival: time, home: Int.random(in: 0..<options.nodes, using: &random), work: work, rssBytes: rss, remaining: work))
        }
        workload = jobs
    }

    static func boundedPareto(_ uniform: Double) -> Double {
        let (a, l, h) = (workShape, workMin, workMax)
        return pow(-(uniform * pow(h, a) - uniform * pow(l, a) - pow(h, a)) / (pow(h, a) * pow(l, a)), -1 / a)
    }

    static var meanWork: Double {
        let (a, l, h) = (workShape, workMin, workMax)
        return pow(l, a) / (1 - pow(l / h, a)) * a / (a - 1) * (1 / pow(l, a - 1) - 1 / pow(h, a - 1))
    }

    public func run(_ policy: Policy) -> Result {
        var state = Run(simulator: self, policy: policy)
        return state.run()
    }
}

/// One policy's run over the shared workload.
private struct Run {
    let simulator: BalanceSimulator
    let policy: BalanceSimulator.Policy
    var jobs: [BalanceSimulator.SimJob]
    var onNode: [[Int]]
    var windows: [LoadWindow]
    /// A node's migration under way ends then (one at a time per node).
    var busyUntil: [Double]
    var random: SeededRandom
    var messages = 0
    let configuration: BalancerConfiguration

    init(simulator: BalanceSimulator, policy: BalanceSimulator.Policy) {
        self.simulator = simulator
        self.policy = policy
        jobs = simulator.workload
        onNode = Array(repeating: [], count: simulator.options.nodes)
        windows = Array(repeating: LoadWindow(capacity: 16, staleAfterMs: 5_000), count: simulator.options.nodes)
        busyUntil = Array(repeating: 0, count: simulator.options.nodes)
        random = SeededRandom(seed: simulator.options.seed &* 31 &+ 7)
        var configuration = BalancerConfiguration()
        configuration.migrationFixedMs = simulator.options.migrationFixedMs
        configuration.migrationBytesPerSecond = simulator.options.migrationMiBps * 1_048_576
        self.configuration = configuration
    }

    private var nodes: Int { simulator.options.nodes }
    private func capacity(_ node: Int) -> Double { Double(simulator.speeds[node]) / 1000 }
    private func normalized(_ node: Int) -> Double { Double(onNode[node].count) / capacity(node) }

    mutating func run() -> BalanceSimulator.Result {
        let step = simulator.options.step
        let roundEvery = max(1, Int((1 / step).rounded()))
        let fastest = Double(simulator.speeds.max() ?? 1000) / 1000
        // The capacity of the k fastest nodes, for the ideal.
        var fastestFirst: [Double] = [0]
        for speed in simulator.speeds.sorted(by: >) { fastestFirst.append(fastestFirst.last! + Double(speed) / 1000) }
        var next = 0
        var present: [Int] = []
        var finished = 0
        var tick = 0
        var now = 0.0
        while finished < jobs.count {
            now = Double(tick) * step
            while next < jobs.count && jobs[next].arrival <= now {
                place(next, now: now)
                present.append(next)
                next += 1
            }
            if policy == .omx && tick % roundEvery == 0 { balanceRound(now: now) }
            // Progress over this step: processor sharing on each node (or the whole cluster).
            if policy == .ideal {
                let rate = present.isEmpty ? 0 : fastestFirst[min(present.count, nodes)] / Double(present.count)
                for index in present { jobs[index].remaining -= rate * step }
            } else {
                for node in 0..<nodes where !onNode[node].isEmpty {
                    let running = onNode[node].filter { jobs[$0].frozenUntil <= now }
                    guard !running.isEmpty else { continue }
                    let rate = capacity(node) / Double(running.count)
                    for index in running { jobs[index].remaining -= rate * step }
                }
            }
            var still: [Int] = []
            for index in present {
                if jobs[index].remaining <= 0 {
                    jobs[index].finished = now + step
                    finished += 1
                    if policy != .ideal { onNode[jobs[index].node].removeAll { $0 == index } }
                } else {
                    still.append(index)
                }
            }
            present = still
            tick += 1
        }
        let slowdowns = jobs.map { ($0.finished - $0.arrival) / ($0.work / fastest) }
        let migrations = jobs.reduce(0) { $0 + Int($1.migrations) }
        return BalanceSimulator.Result(
            policy: policy.rawValue, nodes: nodes, load: simulator.options.load, jobs: jobs.count,
            meanSlowdown: slowdowns.reduce(0, +) / Double(max(1, jobs.count)), makespan: jobs.map(\.finished).max() ?? 0,
            migrationsPerJob: Double(migrations) / Double(max(1, jobs.count)),
            messagesPerNodePerSecond: Double(messages) / Double(nodes) / max(1, now))
    }

    private mutating func place(_ index: Int, now: Double) {
        var node = jobs[index].home
        switch policy {
        case .ideal, .none: break
        case .omx:
            let home = node
            let own = NodeLoad(node: UInt32(home), load: Double(onNode[home].count), cpus: 1, speed: simulator.speeds[home], freeMemory: 1 << 40, totalMemory: 1 << 40, sampledMs: UInt64(now * 1000))
            // The lightest-looking peers answer a probe with their load now (Balancer.Probe:
            // the jobs their Migrator runs at that moment, each asking a CPU).
            let nowMs = UInt64(now * 1000)
            for candidate in DecisionCore.probeCandidates(
                demand: 1, own: own, peers: windows[home].eligible(alive: Set(windows[home].records.keys)), configuration: configuration, nowMs: nowMs) {
                let peer = Int(candidate)
                windows[home].insert(NodeLoad(
                    node: candidate, load: Double(onNode[peer].count), cpus: 1, speed: simulator.speeds[peer], freeMemory: 1 << 40, totalMemory: 1 << 40,
                    jobs: UInt32(onNode[peer].count), sampledMs: nowMs))
                messages += 2
            }
            let peers = windows[home].eligible(alive: Set(windows[home].records.keys))
            node = Int(DecisionCore.place(demand: 1, own: own, peers: peers, configuration: configuration, nowMs: UInt64(now * 1000), random: &random))
            if node != home { windows[home].assume(1, movedTo: UInt32(node)) }
        case .random: node = Int.random(in: 0..<nodes, using: &random)
        case .powerOfTwo:
            let other = Int.random(in: 0..<nodes, using: &random)
            let first = Int.random(in: 0..<nodes, using: &random)
            node = normalized(other) < normalized(first) ? other : first
        }
        jobs[index].node = node
        jobs[index].arrivedAtNode = now
        if policy != .ideal { onNode[node].append(index) }
    }

    /// One second of the OMX Balancer on every node: gossip to two random peers, then the
    /// decision core on the node's own jobs and its window.
    private mutating func balanceRound(now: Double) {
        let nowMs = UInt64(now * 1000)
        let records = (0..<nodes).map { node in
            NodeLoad(node: UInt32(node), load: Double(onNode[node].count), cpus: 1, speed: simulator.speeds[node], freeMemory: 1 << 40, totalMemory: 1 << 40,
                     jobs: UInt32(onNode[node].count), sampledMs: nowMs)
        }
        for node in 0..<nodes {
            for _ in 0..<configuration.fanout where nodes > 1 {
                var peer = Int.random(in: 0..<(nodes - 1), using: &random)
                if peer >= node { peer += 1 }
                windows[peer].insert(records[node])
                windows[node].insert(records[peer])
                messages += 2
            }
            windows[node].expire(nowMs: nowMs)
        }
        for node in 0..<nodes where busyUntil[node] <= now && onNode[node].count > 1 {
            let samples = onNode[node].filter { jobs[$0].frozenUntil <= now }.map { index in
                JobSample(
                    job: String(index), home: UInt32(jobs[index].home), demand: 1, rssBytes: jobs[index].rssBytes,
                    ageMs: UInt64((now - jobs[index].arrival) * 1000), residentMs: UInt64((now - jobs[index].arrivedAtNode) * 1000),
                    migrations: jobs[index].migrations)
            }
            let peers = windows[node].eligible(alive: Set(windows[node].records.keys))
            guard let decision = DecisionCore.decide(own: records[node], jobs: samples, peers: peers, configuration: configuration, nowMs: nowMs, random: &random),
                  let index = Int(decision.job) else { continue }
            let target = Int(decision.target)
            let freeze = configuration.migrationCostMs(rssBytes: jobs[index].rssBytes) / 1000
            onNode[node].removeAll { $0 == index }
            onNode[target].append(index)
            jobs[index].node = target
            jobs[index].frozenUntil = now + freeze
            jobs[index].arrivedAtNode = now + freeze
            jobs[index].migrations += 1
            busyUntil[node] = now + freeze
            windows[node].assume(1, movedTo: decision.target)
        }
    }
}
