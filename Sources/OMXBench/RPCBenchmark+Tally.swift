import Glibc
import Shared

extension RPCBenchmark {
    /// What one pairing of client and server measured over the rounds of a test.
    struct Tally {
        var samplesUs: [Double] = []
        var calls = 0
        var seconds = 0.0
        var cpuNs = 0.0
        /// The user-mode part of `cpuNs`.
        var userNs = 0.0

        /// Calls per second over every round.
        var rate: Double { Double(calls) / seconds }
        /// CPU time per call, client and server together.
        var cpuPerCallUs: Double { cpuNs / 1_000 / Double(max(calls, 1)) }
        var userPerCallUs: Double { userNs / 1_000 / Double(max(calls, 1)) }

        func percentile(_ fraction: Double) -> Double {
            let sorted = samplesUs.sorted()
            return sorted[min(Int(Double(sorted.count) * fraction), sorted.count - 1)]
        }

        mutating func add(_ other: Tally) {
            samplesUs += other.samplesUs
            calls += other.calls
            seconds += other.seconds
            cpuNs += other.cpuNs
            userNs += other.userNs
        }

        /// Runs a round of this process's client and charges the CPU time this process and the
        /// server spent meanwhile to its calls.
        mutating func charge(server: ChildProcess, _ round: () async throws -> Tally) async throws {
            let before = (cpuTimeNs(of: getpid()) ?? 0) + (cpuTimeNs(of: server.pid) ?? 0)
            let userBefore = (userTimeNs(of: getpid()) ?? 0) + (userTimeNs(of: server.pid) ?? 0)
            var measured = try await round()
            let after = (cpuTimeNs(of: getpid()) ?? 0) + (cpuTimeNs(of: server.pid) ?? 0)
            let userAfter = (userTimeNs(of: getpid()) ?? 0) + (userTimeNs(of: server.pid) ?? 0)
            measured.cpuNs = Double(after - before)
            measured.userNs = Double(userAfter - userBefore)
            add(measured)
        }
    }
}
