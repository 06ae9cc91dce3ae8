/// How many connections each caller holds on a server, and whether one more may open: a local
/// user other than root, or a TCP peer address, may hold at most its limit, so that no single
/// caller can take every file descriptor of a service from the others.
struct ConnectionQuota {
    /// Whom a connection counts against.
    enum Holder: Hashable, CustomStringConvertible {
        case user(UInt32)
        case address(String)

        var description: String {
            switch self {
            case let .user(uid): return "uid \(uid)"
            case let .address(address): return "address \(address)"
            }
        }
    }

    /// Why a connection may not open.
    struct Refusal {
        let reason: String
        /// The first refusal since the holder reached its limit (the one worth a log line).
        let isFirst: Bool
    }

    let perUser: Int
    let perAddress: Int
    private var counts: [Holder: Int] = [:]
    /// Holders refused since they last were under their limit.
    private var refusing: Set<Holder> = []

    init(perUser: Int, perAddress: Int) {
        self.perUser = perUser
        self.perAddress = perAddress
    }

    /// Whom a connection from `caller` counts against; nil for local root, who is not limited.
    static func holder(of caller: Caller) -> Holder? {
        switch caller {
        case let .local(_, uid, _, _): return uid == 0 ? nil : .user(uid)
        case let .remote(address, _): return .address(address)
        }
    }

    /// Counts one more connection of `holder`.
    /// - Returns: nil when it may open; else why not.
    mutating func admit(_ holder: Holder?) -> Refusal? {
        guard let holder else { return nil }
        let held = counts[holder, default: 0]
        guard held < limit(of: holder) else {
            let isFirst = refusing.insert(holder).inserted
            return Refusal(reason: "\(holder) already holds \(held) connections, the most one caller may; close some first", isFirst: isFirst)
        }
        counts[holder] = held + 1
        return nil
    }

    /// Forgets one closed connection of `holder`, admitted before.
    mutating func release(_ holder: Holder?) {
        guard let holder, let held = counts[holder] else { return }
        counts[holder] = held > 1 ? held - 1 : nil
        refusing.remove(holder)
    }

    /// The connections `holder` holds now.
    func held(by holder: Holder) -> Int { counts[holder, default: 0] }

    private func limit(of holder: Holder) -> Int {
        switch holder {
        case .user: return perUser
        case .address: return perAddress
        }
    }
}
