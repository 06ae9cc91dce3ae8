import CFileSystem
import Glibc
import Shared
import XCTest

@testable import FSGateway

/// The gateway's lock table on real files: each owner's locks in a description of its own,
/// conflicting with other owners' and with this process's own OFD locks on the file.
final class FileLocksTests: XCTestCase {
    private let node2 = Caller.remote(address: "127.0.0.2", nodeID: 2)
    private var path = ""

    override func setUpWithError() throws {
        path = NSTemporaryDirectory() + "omx-locks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(count: 100)))
    }

    override func tearDown() { unlink(path) }

    private func file(_ flags: Int32 = O_RDWR) -> OpenFiles.File {
        OpenFiles.File(fd: open(path, flags), path: "locked", append: false, owner: node2, lane: .loop, closeOffLoop: { fd, _ in close(fd) })
    }

    private func code(_ body: () throws -> Any) -> Int32? {
        do {
            _ = try body()
            return nil
        } catch {
            return (error as? ExportedTree.Failure)?.code
        }
    }

    func testOwnersConflictMergeAndLetGo() throws {
        let locks = FileLocks()
        let handle = file()
        XCTAssertTrue(try locks.set(FileLock(type: .write, start: 0, length: 10, owner: 1), on: handle, handle: 7, client: 9))
        XCTAssertTrue(try locks.set(FileLock(type: .write, start: 20, length: 10, owner: 1), on: handle, handle: 7, client: 9), "one owner's ranges")
        XCTAssertEqual(code { try locks.set(FileLock(type: .read, start: 5, length: 1, owner: 2), on: handle, handle: 7, client: 9) }, EAGAIN)
        XCTAssertEqual(code { try locks.set(FileLock(type: .write, start: 0, length: 1, owner: 1), on: handle, handle: 7, client: 8) }, EAGAIN, "another mount's owner 1")
        XCTAssertEqual(try locks.test(FileLock(type: .write, start: 0, length: 0, owner: 2), on: handle, client: 9), FileLock(type: .write, start: 0, length: 10, owner: 0))
        XCTAssertEqual(try locks.test(FileLock(type: .write, start: 0, length: 0, owner: 1), on: handle, client: 9).type, .unlock, "its own locks never conflict")

        // A local OFD lock on the file conflicts too.
        let local = open(path, O_RDWR)
        defer { close(local) }
        var query = flock()
        query.l_type = Int16(F_WRLCK)
        query.l_start = 25
        query.l_len = 1
        XCTAssertEqual(fcntl(local, Int32(OMX_F_OFD_GETLK), &query), 0)
        XCTAssertEqual(Int32(query.l_type), F_WRLCK, "the node's processes see the gateway's lock")

        XCTAssertTrue(try locks.set(FileLock(type: .unlock, start: 0, length: 10, owner: 1), on: handle, handle: 7, client: 9), "bytes 20-29 stay locked")
        XCTAssertEqual(locks.count, 1)
        XCTAssertFalse(try locks.set(FileLock(type: .unlock, start: 0, length: 0, owner: 1), on: handle, handle: 7, client: 9))
        XCTAssertEqual(locks.count, 0, "a description holding nothing closes")
        XCTAssertFalse(try locks.set(FileLock(type: .unlock, owner: 5), on: handle, handle: 7, client: 9), "unlocking nothing is no error")
    }

    func testTheLastHandleTakesItsLocksAlong() throws {
        let locks = FileLocks()
        let handle = file()
        XCTAssertTrue(try locks.set(FileLock(type: .write, owner: 1, wholeFile: true), on: handle, handle: 7, client: 9))
        XCTAssertEqual(code { try locks.set(FileLock(type: .read, owner: 2, wholeFile: true), on: handle, handle: 8, client: 9) }, EAGAIN)
        XCTAssertTrue(try locks.set(FileLock(type: .write, owner: 1, wholeFile: true), on: handle, handle: 8, client: 9), "the owner asks again through handle 8")
        locks.forget([7])
        XCTAssertEqual(locks.count, 1, "handle 8 still holds it")
        locks.forget([8, 99])
        XCTAssertEqual(locks.count, 0)
        XCTAssertTrue(try locks.set(FileLock(type: .write, owner: 2, wholeFile: true), on: handle, handle: 8, client: 9), "free again")
    }

    func testBadLocksAreRefusedNamingTheFile() throws {
        let locks = FileLocks()
        let readOnly = file(O_RDONLY)
        XCTAssertEqual(code { try locks.set(FileLock(type: .write, start: 0, length: 1, owner: 1), on: readOnly, handle: 7, client: 9) }, EBADF)
        var unknown = FileLock(type: .read, owner: 1)
        unknown.typeNumber = 7
        XCTAssertNil(unknown.type)
        XCTAssertEqual(code { try locks.set(unknown, on: readOnly, handle: 7, client: 9) }, EINVAL)
        XCTAssertEqual(code { try locks.set(FileLock(type: .read, start: -1, length: 1, owner: 1), on: readOnly, handle: 7, client: 9) }, EINVAL)
        XCTAssertEqual(code { try locks.set(FileLock(type: .read, start: 1, length: .max, owner: 1), on: readOnly, handle: 7, client: 9) }, EINVAL)
        XCTAssertEqual(code { try locks.test(FileLock(type: .read, owner: 1, wholeFile: true), on: readOnly, client: 9) }, EINVAL, "flock has no test")
        XCTAssertEqual(locks.count, 0, "a refused lock keeps no description")
        let writeOnly = file(O_WRONLY)
        XCTAssertTrue(try locks.set(FileLock(type: .write, start: 0, length: 1, owner: 1), on: writeOnly, handle: 7, client: 9))
        XCTAssertEqual(code { try locks.set(FileLock(type: .read, start: 5, length: 1, owner: 1), on: writeOnly, handle: 7, client: 9) }, EBADF)
        XCTAssertTrue(
            try locks.set(FileLock(type: .read, start: 5, length: 1, owner: 1), on: readOnly, handle: 8, client: 9),
            "one owner locks through a read-only and a write-only handle of the file")
        do {
            _ = try locks.set(FileLock(type: .write, start: 0, length: 1, owner: 1), on: readOnly, handle: 7, client: 9)
        } catch {
            XCTAssertTrue("\(error)".contains("locked: lock: a write lock needs the file open for writing"), "\(error)")
        }
    }
}
