import Discovery

/// `omx bench membership`: the Discovery protocol core in a deterministic simulation at
/// several cluster sizes and message-loss rates.
public struct MembershipBenchmark {
    /// One simulated configuration's figures.
    public struct Row: Sendable, Encodable {
        public let nodes: Int
        public let loss: Double
        /// Rounds from the crash until the first node suspects it.
        public let firstDetectionRounds: Int
        /// Rounds from the crash until every live node has it dead.
        public let everyoneKnowsDeadRounds: Int
        /// Rounds from the first suspicion until every node has heard of it (suspect or dead).
        public let spreadRounds: Int
        /// Declarations of a healthy node's death during the quiet rounds, per node per round.
        public let falsePositiveRate: Double
        public let messagesPerNodePerRound: Double
    }

    public let sizes: [Int]
    public let losses: [Double]
    public let quietRounds: Int

    public init(sizes: [Int], losses: [Double], quietRounds: Int = 40) {
        self.sizes = sizes
        self.losses = losses
        self.quietRounds = quietRounds
    }

    /// Simulates every size at every loss rate; `progress` receives a line per configuration.
    public func run(progress: (String) -> Void) -> [Row] {
        var rows: [Row] = []
        for size in sizes {
            for loss in losses {
                progress("\(size) nodes, \(Int(loss * 100)) % loss")
                var simulator = MembershipSimulator(size: size, loss: loss, seed: UInt64(size) &* 1_000 &+ UInt64(loss * 1_000))
                for _ in 0..<quietRounds { simulator.step() }
                let falseDeaths = simulator.deathsDeclared
                let quietMessages = simulator.messages
                let victim = UInt32(size / 2)
                simulator.crash(victim)
                let crashRound = simulator.round
                let live = size - 1
                var firstDetection = -1
                var everyoneSuspects = -1
                var everyoneDead = -1
                while everyoneDead < 0 && simulator.round - crashRound < 400 {
                    simulator.step()
                    let rounds = simulator.round - crashRound
                    let told = simulator.count(seeing: victim, in: [.suspect, .dead])
                    if firstDetection < 0 && told > 0 { firstDetection = rounds }
                    if everyoneSuspects < 0 && told == live { everyoneSuspects = rounds }
                    if simulator.count(seeing: victim, in: [.dead]) == live { everyoneDead = rounds }
                }
                rows.append(Row(
                    nodes: size, loss: loss, firstDetectionRounds: firstDetection, everyoneKnowsDeadRounds: everyoneDead,
                    spreadRounds: everyoneSuspects - firstDetection,
                    falsePositiveRate: Double(falseDeaths) / Double(size * quietRounds),
                    messagesPerNodePerRound: Double(quietMessages) / Double(size * quietRounds)))
            }
        }
        return rows
    }
}
