import Foundation
import Shared
import Synchronization
import XCTest

/// Stops and removes, when a test ends, every local cluster it did not take `down()` (one
/// that failed first, say): its services would run on through the other tests, and each
/// node's /mfs, which shows every node's whole tree, would stay mounted in /tmp.
final class ClusterJanitor: NSObject, XCTestObservation, Sendable {
    static let shared: ClusterJanitor = {
        let janitor = ClusterJanitor()
        XCTestObservationCenter.shared.addTestObserver(janitor)
        return janitor
    }()

    /// The directories of the clusters started and not stopped yet.
    private let running = Mutex<Set<String>>([])

    func started(_ dir: String) {
        running.withLock { _ = $0.insert(dir) }
    }

    func stopped(_ dir: String) {
        running.withLock { _ = $0.remove(dir) }
    }

    func testCaseDidFinish(_ testCase: XCTestCase) {
        let left = running.withLock { running in
            defer { running = [] }
            return running
        }
        for dir in left.sorted() {
            print("note: \(testCase.name) ended without down() for \(dir): stopping and removing that cluster")
            _ = LocalCluster.run("omx", ["cluster", "down", "--dir", dir])
            removeTree(dir)
        }
    }
}
