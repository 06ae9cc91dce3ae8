import Shared

/// One node's view of the cluster: the pure state machine of the SWIM failure detector.
///
/// It does no I/O and reads no clock: the service (and the simulator) feed it events with the
/// current time — probe results, received updates, ticks — and send what it returns. The rules
/// are SWIM's with incarnation numbers: only a member itself raises its incarnation, to refute
/// a suspicion or to rejoin; at equal incarnation, dead beats suspect beats alive.
public struct Membership: Sendable {
    /// What this node knows about one member: the member's record in the form it is gossiped,
    /// plus what only this node measures. The record's fields read as the member's own
    /// (`member.state`, `member.incarnation`, ...).
    @dynamicMemberLookup
    public struct Member: Sendable, Equatable {
        /// The record; its state is alive, suspect, dead or left (mismatch is derived elsewhere).
        public var update: MemberUpdate
        /// When this node last had a message from the member; 0: never.
        public var lastHeardMs: UInt64 = 0
        /// When a suspicion becomes death.
        public var suspicionDeadlineMs: UInt64 = 0

        public var id: UInt32 { update.nodeID }

        public subscript<T>(dynamicMember field: WritableKeyPath<MemberUpdate, T>) -> T {
            get { update[keyPath: field] }
            set { update[keyPath: field] = newValue }
        }

        /// A member never heard of: dead, incarnation 0.
        static func unknown(_ id: UInt32) -> Member {
            Member(update: MemberUpdate(nodeID: id, state: .dead, incarnation: 0, mapDigest: "", version: ""))
        }
    }

    public let selfID: UInt32
    public let configuration: SWIMConfiguration
    public private(set) var members: [UInt32: Member] = [:]
    /// Grows with every change anyone could see in `members`.
    public private(set) var change: UInt64 = 1
    /// How many members this node itself declared dead (its suspicion ran out), ever.
    public private(set) var declaredDead = 0
    /// True after `leave()`, until `rejoin`.
    public private(set) var hasLeft = false
    private var broadcasts = BroadcastQueue()
    /// The members now suspect, so a tick looks at them only.
    private var suspects: Set<UInt32> = []
    private var probeOrder: [UInt32] = []
    private var probeIndex = 0
    private var rounds = 0

    /// - Parameters:
    ///   - selfID: this node.
    ///   - nodeIDs: every node of the map (this one included); the others start dead, never heard.
    ///   - incarnation: this node's starting incarnation; pass something larger than any earlier
    ///     run used (the start time in ms does), so a restarted node overrides its old death.
    public init(selfID: UInt32, nodeIDs: [UInt32], mapDigest: String, version: String, incarnation: UInt64, configuration: SWIMConfiguration = SWIMConfiguration()) {
        self.selfID = selfID
        self.configuration = configuration
        for id in nodeIDs where id != selfID { members[id] = .unknown(id) }
        members[selfID] = Member(update: MemberUpdate(nodeID: selfID, state: .alive, incarnation: incarnation, mapDigest: mapDigest, version: version))
        broadcasts.enqueue(members[selfID]!.update)
    }

    /// This node's own record.
    public var own: Member { members[selfID]! }

    // MARK: Probing

    /// The member to probe this round: round-robin over a shuffled list of live members (SWIM),
    /// and every `deadProbeEveryRounds` rounds a dead one, so a member that comes back is found.
    public mutating func nextProbeTarget<R: RandomNumberGenerator>(using random: inout R) -> UInt32? {
        guard !hasLeft else { return nil }
        rounds += 1
        if rounds % configuration.deadProbeEveryRounds == 0 {
            let dead = members.values.filter { $0.state == .dead && $0.id != selfID }.map(\.id)
            if let target = dead.randomElement(using: &random) { return target }
        }
        for _ in 0..<2 {
            while probeIndex < probeOrder.count {
                let candidate = probeOrder[probeIndex]
                probeIndex += 1
                if let member = members[candidate], member.state == .alive || member.state == .suspect { return candidate }
            }
            probeOrder = members.keys.filter { $0 != selfID }.shuffled(using: &random)
            probeIndex = 0
        }
        return nil
    }

    /// Up to `count` live members other than `target` to probe it for us.
    public func indirectHelpers<R: RandomNumberGenerator>(for target: UInt32, count: Int, using random: inout R) -> [UInt32] {
        let candidates = members.values.filter { $0.state == .alive && $0.id != selfID && $0.id != target }.map(\.id)
        return Array(candidates.shuffled(using: &random).prefix(count))
    }

    /// The target missed its direct and indirect probes: suspect it.
    public mutating func probeFailed(_ target: UInt32, nowMs: UInt64) {
        guard var suspicion = members[target]?.update, suspicion.state == .alive else { return }
        suspicion.state = .suspect
        apply(suspicion, nowMs: nowMs)
    }

    /// A message came from `id` itself.
    public mutating func heardFrom(_ id: UInt32, nowMs: UInt64) {
        members[id]?.lastHeardMs = nowMs
    }

    /// Declares dead the suspects whose suspicion ran out.
    /// - Returns: the members declared dead now.
    @discardableResult
    public mutating func tick(nowMs: UInt64) -> [UInt32] {
        var dead: [UInt32] = []
        for id in suspects {
            guard let member = members[id], member.state == .suspect, member.suspicionDeadlineMs <= nowMs else { continue }
            declaredDead += 1
            var death = member.update
            death.state = .dead
            apply(death, nowMs: nowMs)
            dead.append(id)
        }
        return dead
    }

    // MARK: Gossip

    /// Updates to piggyback on the next message.
    public mutating func piggyback() -> [MemberUpdate] {
        broadcasts.take(max: configuration.maxPiggyback, limit: retransmitLimit(members: members.count, configuration))
    }

    /// The updates for a message to `target`: this node's own record, what this node believes of
    /// `target` when that is bad news (so it can refute at once), and the gossip queue.
    public mutating func outgoing(to target: UInt32) -> [MemberUpdate] {
        var updates = [own.update]
        if let member = members[target], member.state == .suspect || member.state == .dead {
            updates.append(member.update)
        }
        return updates + piggyback().filter { $0.nodeID != selfID && $0.nodeID != target }
    }

    /// Everything this node knows, for a full-state exchange (join, anti-entropy).
    public var fullState: [MemberUpdate] {
        members.values.filter { $0.id == selfID || $0.incarnation > 0 }.map(\.update)
    }

    /// Drops the updates waiting to be gossiped: the state of a node that has nothing left to
    /// tell (a simulation's converged starting point).
    public mutating func markConverged() {
        broadcasts = BroadcastQueue()
    }

    /// Merges updates heard from others; accepted news is queued to be passed on.
    /// - Returns: the members whose state changed.
    @discardableResult
    public mutating func apply(_ updates: [MemberUpdate], nowMs: UInt64) -> [UInt32] {
        var changed: [UInt32] = []
        for update in updates {
            let before = members[update.nodeID]?.state
            if apply(update, nowMs: nowMs), members[update.nodeID]?.state != before { changed.append(update.nodeID) }
        }
        return changed
    }

    /// Incarnations from here up are refused: real ones grow by one per refutation, and one
    /// near 2^64 could only be made up (and would leave no room to refute it).
    public static let incarnationLimit: UInt64 = 1 << 62

    /// Merges one update (SWIM's rules); returns true when it changed something.
    @discardableResult
    public mutating func apply(_ update: MemberUpdate, nowMs: UInt64) -> Bool {
        guard update.incarnation < Membership.incarnationLimit else { return false }
        if update.nodeID == selfID { return refuteIfNeeded(update) }
        guard var member = members[update.nodeID] else { return false }
        let newer = update.incarnation > member.incarnation
        let same = update.incarnation == member.incarnation
        switch update.state {
        case .alive:
            if newer {
                member.state = .alive
            } else if !(same && update.registryVersion > member.registryVersion && member.state != .dead && member.state != .left) {
                return false
            }
        case .suspect:
            guard newer || (same && member.state == .alive) else { return false }
            member.state = .suspect
            member.suspicionDeadlineMs = nowMs + suspicionTimeoutMs(members: members.count, configuration)
        case .dead:
            guard newer || (same && (member.state == .alive || member.state == .suspect)) else { return false }
            member.state = .dead
        case .left:
            guard newer || (same && member.state != .left) else { return false }
            member.state = .left
        case .mismatch:
            return false
        }
        member.incarnation = update.incarnation
        if !update.mapDigest.isEmpty {
            member.mapDigest = update.mapDigest
            member.version = update.version
        }
        if update.registryVersion >= member.registryVersion {
            member.registryVersion = update.registryVersion
            member.services = update.services
        }
        members[update.nodeID] = member
        if member.state == .suspect { suspects.insert(member.id) } else { suspects.remove(member.id) }
        broadcasts.enqueue(member.update)
        change += 1
        return true
    }

    /// Someone says this node is suspect or dead: raise the incarnation and say it is alive.
    private mutating func refuteIfNeeded(_ update: MemberUpdate) -> Bool {
        guard !hasLeft, update.state == .suspect || update.state == .dead, update.incarnation >= own.incarnation else { return false }
        members[selfID]!.incarnation = update.incarnation + 1
        broadcasts.enqueue(own.update)
        change += 1
        return true
    }

    // MARK: This node

    /// Publishes this node's registered services.
    public mutating func setServices(_ services: [ServiceInstance]) {
        guard services != own.services else { return }
        members[selfID]!.services = services
        members[selfID]!.registryVersion += 1
        broadcasts.enqueue(own.update)
        change += 1
    }

    /// Leaves the cluster gracefully: the others mark this node left, not dead.
    public mutating func leave() {
        guard !hasLeft else { return }
        hasLeft = true
        members[selfID]!.state = .left
        members[selfID]!.incarnation += 1
        broadcasts.enqueue(own.update)
        change += 1
    }

    /// Joins again after `leave()`, with an incarnation above every earlier one.
    public mutating func rejoin(incarnation: UInt64) {
        hasLeft = false
        members[selfID]!.state = .alive
        members[selfID]!.incarnation = max(incarnation, own.incarnation + 1)
        broadcasts.enqueue(own.update)
        change += 1
    }

    /// Follows a new map: new node ids start dead, removed ones are forgotten.
    public mutating func setNodes(_ nodeIDs: [UInt32], mapDigest: String) {
        let wanted = Set(nodeIDs)
        for id in members.keys where !wanted.contains(id) && id != selfID {
            members[id] = nil
            suspects.remove(id)
        }
        for id in wanted where members[id] == nil { members[id] = .unknown(id) }
        members[selfID]!.mapDigest = mapDigest
        members[selfID]!.incarnation += 1
        broadcasts.enqueue(own.update)
        probeOrder = []
        change += 1
    }
}
