import Shared

/// Each job once out of several nodes' lists: the record of the node it runs on, else its
/// home's, else any.
func mergeJobReports(_ reports: [(node: UInt32, jobs: [Job])]) -> [Job] {
    var best: [String: (job: Job, rank: Int)] = [:]
    for (node, jobs) in reports {
        for job in jobs {
            let rank = job.where == node && job.state != .exited ? 2 : (job.home == node ? 1 : 0)
            if let current = best[job.id], current.rank >= rank { continue }
            best[job.id] = (job, rank)
        }
    }
    return best.values.map(\.job).sorted { jobOrder($0.id, $1.id) }
}

/// Orders job ids by home node, then number ("1.2" before "1.10").
func jobOrder(_ a: String, _ b: String) -> Bool {
    let left = a.split(separator: ".").map { UInt64($0) ?? 0 }
    let right = b.split(separator: ".").map { UInt64($0) ?? 0 }
    return left.lexicographicallyPrecedes(right)
}
