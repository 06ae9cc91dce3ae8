import HeapModule

/// The deadlines of a client's calls in flight, earliest first, and one timer that fires at the
/// earliest. Loop thread only. A call answered in time leaves its deadline behind; the owner
/// tells stale ones apart when they expire, and they are dropped in bulk once they outnumber
/// the calls in flight.
final class CallDeadlines {
    struct Deadline: Comparable {
        let ns: UInt64
        let callID: UInt64
        static func < (a: Deadline, b: Deadline) -> Bool { (a.ns, a.callID) < (b.ns, b.callID) }
    }

    private let loop: EventLoop
    private var heap = Heap<Deadline>()
    private var timer: LoopTimer?
    private var armedForNs = UInt64.max
    /// Told of each deadline that passed, stale ones included.
    var expired: ((Deadline) -> Void)?

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// Adds a call's deadline. `live` gives the deadlines of the calls still in flight, of which
    /// there are `liveCount`: the heap is rebuilt from them when stale ones have piled up.
    func add(_ deadline: Deadline, liveCount: Int, live: () -> [Deadline]) {
        if heap.count > 2 * liveCount + 1024 { heap = Heap(live()) }
        heap.insert(deadline)
        if deadline.ns < armedForNs { arm(deadline.ns) }
    }

    /// Forgets every deadline (the calls all ended at once).
    func removeAll() {
        heap = Heap()
    }

    /// Stops the timer for good.
    func close() {
        timer?.close()
    }

    private func arm(_ ns: UInt64) {
        if timer == nil { timer = LoopTimer(loop: loop) }
        armedForNs = ns
        timer!.start(afterMs: millisecondsLeft(until: ns, from: monotonicNs())) { [weak self] in self?.expire() }
    }

    private func expire() {
        armedForNs = .max
        let now = monotonicNs()
        while let next = heap.min, next.ns <= now {
            heap.removeMin()
            expired?(next)
        }
        if let next = heap.min { arm(next.ns) }
    }
}
