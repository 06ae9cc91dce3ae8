import Glibc
import Shared
import XCTest

@testable import FSGateway

final class OpenFilesTests: XCTestCase {
    private let root = Caller.local(pid: 1, uid: 0, gid: 0, groups: [])
    private let alice = Caller.local(pid: 2, uid: 1000, gid: 1000, groups: [])
    private let bob = Caller.local(pid: 3, uid: 1001, gid: 1001, groups: [])
    private let node2 = Caller.remote(address: "127.0.0.2", nodeID: 2)
    private let node3 = Caller.remote(address: "127.0.0.3", nodeID: 3)

    private func openDevNull() -> Int32 { open("/dev/null", O_RDONLY) }

    func testAHandleServesItsOpenerAndLocalRootOnly() throws {
        let files = OpenFiles(leaseNs: 60_000_000_000, closeOffLoop: { fd, _ in close(fd) })
        let ofAlice = files.add(fd: openDevNull(), path: "a", append: false, owner: alice, lane: .loop)
        let ofNode2 = files.add(fd: openDevNull(), path: "b", append: false, owner: node2, lane: .loop)
        XCTAssertEqual(try files.file(ofAlice, for: Caller.local(pid: 99, uid: 1000, gid: 5, groups: []), "read").path, "a", "the same uid from another process")
        XCTAssertEqual(try files.file(ofAlice, for: root, "read").path, "a")
        XCTAssertThrowsError(try files.file(ofAlice, for: bob, "read")) { error in
            XCTAssertEqual((error as? ExportedTree.Failure)?.code, EBADF)
            XCTAssertTrue("\(error)".contains("opened by another caller"), "\(error)")
        }
        XCTAssertThrowsError(try files.file(ofAlice, for: node2, "read"))
        XCTAssertEqual(try files.file(ofNode2, for: node2, "write").path, "b")
        XCTAssertThrowsError(try files.file(ofNode2, for: node3, "write"))
        XCTAssertThrowsError(try files.file(ofNode2, for: Caller.remote(address: "127.0.0.3", nodeID: 2), "write"), "node 2's id from another address")
        XCTAssertThrowsError(try files.file(ofNode2, for: alice, "write"))
        XCTAssertEqual(ofNode2, ofAlice + 1)
    }

    func testOnlyItsOpenerReleasesAHandleAndAFileInUseClosesWhenLetGo() throws {
        let files = OpenFiles(leaseNs: 60_000_000_000, closeOffLoop: { fd, _ in close(fd) })
        let fd = openDevNull()
        let id = files.add(fd: fd, path: "a", append: false, owner: alice, lane: .loop)
        files.release([id], by: bob)
        do {
            let inUse = try files.file(id, for: alice, "read")
            files.release([id], by: alice)
            XCTAssertThrowsError(try files.file(id, for: alice, "read"), "released")
            withExtendedLifetime(inUse) { XCTAssertEqual(fcntl(fd, F_GETFD), 0, "a call still holding the file keeps its descriptor open") }
        }
        XCTAssertEqual(fcntl(fd, F_GETFD), -1, "closed once the last user let go")
    }

    func testLeasesRunOutForUnusedHandlesOnly() throws {
        let files = OpenFiles(leaseNs: 50_000_000, closeOffLoop: { fd, _ in close(fd) })
        let idle = files.add(fd: openDevNull(), path: "idle", append: false, owner: alice, lane: .loop)
        let busy = files.add(fd: openDevNull(), path: "busy", append: false, owner: alice, lane: .loop)
        XCTAssertTrue(files.expire().isEmpty)
        for _ in 0..<4 {
            usleep(20_000)
            _ = try files.file(busy, for: alice, "read")
        }
        XCTAssertEqual(files.expire().map(\.file.path), ["idle"])
        XCTAssertThrowsError(try files.file(idle, for: alice, "read"))
        XCTAssertEqual(try files.file(busy, for: alice, "read").path, "busy")
    }

    func testOnlyItsOpenerRenewsALease() throws {
        let files = OpenFiles(leaseNs: 50_000_000, closeOffLoop: { fd, _ in close(fd) })
        let renewed = files.add(fd: openDevNull(), path: "renewed", append: false, owner: node2, lane: .loop)
        let strangers = files.add(fd: openDevNull(), path: "strangers", append: false, owner: node2, lane: .loop)
        for _ in 0..<4 {
            usleep(20_000)
            files.renew([renewed], by: node2)
            files.renew([strangers, 12_345], by: node3)
        }
        XCTAssertEqual(files.expire().map(\.file.path), ["strangers"], "node 3's renewals of node 2's handle count for nothing")
        XCTAssertEqual(try files.file(renewed, for: node2, "read").path, "renewed")
    }

    func testFileTimesConvertWithoutOverflowAndBeforeTheEpoch() {
        XCTAssertEqual(timespec(tv_sec: 10_000_000_000, tv_nsec: 0).clampedNanoseconds, .max)
        XCTAssertEqual(timespec(tv_sec: -10_000_000_000, tv_nsec: 0).clampedNanoseconds, .min)
        XCTAssertEqual(timespec(tv_sec: 9_223_372_036, tv_nsec: 900_000_000).clampedNanoseconds, .max)
        XCTAssertEqual(timespec(tv_sec: 1, tv_nsec: 5).clampedNanoseconds, 1_000_000_005)
        let before = timespec(nanoseconds: -1_500_000_000)
        XCTAssertEqual(before.tv_sec, -2)
        XCTAssertEqual(before.tv_nsec, 500_000_000)
        let after = timespec(nanoseconds: 1_500_000_000)
        XCTAssertEqual(after.tv_sec, 1)
        XCTAssertEqual(after.tv_nsec, 500_000_000)
        XCTAssertEqual(timespec(nanoseconds: -2_000_000_000).tv_nsec, 0)
    }
}
