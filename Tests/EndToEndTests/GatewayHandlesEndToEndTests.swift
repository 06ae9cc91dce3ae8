import Foundation
import Logging
import Shared
import XCTest

/// What a gateway's callers may and may not do with its open files and odd file times, on a
/// real gateway process: local users over its Unix socket (as the kernel names them), other
/// nodes over TCP (as their signatures name them).
final class GatewayHandlesEndToEndTests: XCTestCase {
    /// A gateway of node 1 serving `export`, with a client for it over the Unix socket (as
    /// root) and one over TCP from each of nodes 1 and 2.
    private struct Gateway {
        let cluster: LocalCluster
        let loop: EventLoop
        let local: RPCClient
        let node1: RPCClient
        let node2: RPCClient

        init(subnet: Int, export: String) throws {
            cluster = try LocalCluster(subnet: subnet, nodes: 2)
            try cluster.start(.fsgateway, node: 1, extra: ["--export", export])
            loop = try EventLoop()
            let key = try ClusterKey.load(from: cluster.keyPath)
            local = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(1))/fsgateway-0.sock"), logger: Logger(label: "test"))
            node1 = Gateway.client(loop, subnet: subnet, key: key, fromNode: 1)
            node2 = Gateway.client(loop, subnet: subnet, key: key, fromNode: 2)
        }

        /// A client of node 1's gateway over TCP, from node `node`'s address and signing as it.
        private static func client(_ loop: EventLoop, subnet: Int, key: ClusterKey, fromNode node: UInt32) -> RPCClient {
            RPCClient(
                loop: loop, endpoint: .tcp(host: "127.0.\(subnet).1", port: ServiceKind.fsgateway.port()),
                configuration: .init(authenticator: Authenticator(key: key, nodeID: node), bindAddress: "127.0.\(subnet).\(node)"),
                logger: Logger(label: "test"))
        }

        /// Calls `FSGateway.<method>` through `client`, trying again while the TCP listener is
        /// not up yet.
        func call(_ client: RPCClient, _ method: String, _ request: FsRequest) async throws -> FsResponse {
            for _ in 0..<50 {
                do {
                    return try await client.call("FSGateway.\(method)", request, returning: FsResponse.self)
                } catch let error as RPCError where error.status == .unavailable {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            return try await client.call("FSGateway.\(method)", request, returning: FsResponse.self)
        }

        func stop() async {
            for client in [local, node1, node2] { await client.close() }
            await loop.shutdown()
            cluster.stop()
        }
    }

    /// Reads handle `handle` through `client`: the errno (0 on success) and the text read.
    private func read(_ gateway: Gateway, _ client: RPCClient, _ handle: UInt64) async throws -> (errno: Int32, text: String, error: String) {
        var request = FsRequest()
        request.handle = handle
        request.size = 4_096
        let answer = try await gateway.call(client, "Read", request)
        return (answer.errorNumber, String(decoding: answer.data, as: UTF8.self), answer.error)
    }

    func testAnOpenFileServesOnlyTheCallerThatOpenedIt() async throws {
        try DiscoveryCluster.requireFUSE()
        try PythonClient.requireAndGenerate()
        let export = NSTemporaryDirectory() + "omx-handles-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        defer { removeTree(export) }
        try "root only\n".write(toFile: "\(export)/secret", atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod("\(export)/secret", 0o600), 0)
        try "for all\n".write(toFile: "\(export)/public", atomically: false, encoding: .utf8)
        XCTAssertEqual(chmod("\(export)/public", 0o644), 0)
        let gateway = try Gateway(subnet: 81, export: export)

        // Local root opens the file: the handle is no small counter anyone could guess.
        var open = FsRequest(path: "secret")
        open.flags = O_RDONLY
        let opened = try await gateway.call(gateway.local, "Open", open)
        XCTAssertEqual(opened.errorNumber, 0, opened.error)
        let handle = opened.handle
        XCTAssertGreaterThan(handle, 1 << 32, "handle ids start at a random point")
        let byRoot = try await read(gateway, gateway.local, handle)
        XCTAssertEqual(byRoot.text, "root only\n", byRoot.error)

        // Another local user, through the Python client on the Unix socket, can neither read it
        // nor close it; reading a file of its own, it cannot make up a job to be counted for.
        let script = """
            import sys
            sys.path.insert(0, sys.argv[1])
            from omx_client import Client
            from omx_proto import fsgateway_pb2 as fs
            with Client("unix:" + sys.argv[2]) as gateway:
                answer = gateway.call("FSGateway.Read", fs.FsRequest(handle=int(sys.argv[3]), size=4096), fs.FsResponse)
                print(answer.error_number, len(answer.data), answer.error)
                gateway.call("FSGateway.Release", fs.FsRequest(handle=int(sys.argv[3])), fs.FsResponse)
                public = gateway.call("FSGateway.Open", fs.FsRequest(path="public"), fs.FsResponse)
                own = gateway.call("FSGateway.Read", fs.FsRequest(handle=public.handle, size=4096, job="made.up", caller_node=9), fs.FsResponse)
                print(own.error_number, own.data.decode())
                try:
                    gateway.call("FSGateway.Changes", fs.ChangesRequest(since=0), fs.ChangesResponse)
                    print("changes: answered")
                except Exception as refusal:
                    print("changes:", refusal)
            """
        let nobody = LocalCluster.runAbsolute(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", PythonClient.python, "-B", "-c", script,
             PythonClient.directory, "\(gateway.cluster.runDir(1))/fsgateway-0.sock", "\(handle)"])
        XCTAssertEqual(nobody.status, 0, nobody.stderr)
        XCTAssertTrue(nobody.stdout.hasPrefix("\(EBADF) 0 "), "uid 65534 got: \(nobody.stdout)")
        XCTAssertTrue(nobody.stdout.contains("opened by another caller"), nobody.stdout)
        XCTAssertTrue(nobody.stdout.contains("\n0 for all\n\n"), "uid 65534 reads its own file: \(nobody.stdout)")
        XCTAssertTrue(nobody.stdout.contains("changes: ") && nobody.stdout.contains("FSGateway.Changes is for /mfs mounts and root, not for uid 65534"), nobody.stdout)
        let counters = try await gateway.call(gateway.local, "Counters", FsRequest()).counters
        XCTAssertFalse(counters.contains { $0.job == "made.up" }, "\(counters)")
        let afterStranger = try await read(gateway, gateway.local, handle)
        XCTAssertEqual(afterStranger.text, "root only\n", "the stranger's Release left it open: \(afterStranger.error)")

        // Another node cannot use it either, and node 1's own handles serve node 1 (and local root) only.
        let fromNode2 = try await read(gateway, gateway.node2, handle)
        XCTAssertEqual(fromNode2.errno, EBADF, "node 2 read local root's handle: \(fromNode2.error)")
        XCTAssertTrue(fromNode2.error.contains("node 2"), fromNode2.error)
        let node1Open = try await gateway.call(gateway.node1, "Open", open)
        XCTAssertEqual(node1Open.errorNumber, 0, node1Open.error)
        let node1sByNode2 = try await read(gateway, gateway.node2, node1Open.handle)
        XCTAssertEqual(node1sByNode2.errno, EBADF)
        let node1sByNode1 = try await read(gateway, gateway.node1, node1Open.handle)
        XCTAssertEqual(node1sByNode1.text, "root only\n", node1sByNode1.error)
        let node1sByLocalRoot = try await read(gateway, gateway.local, node1Open.handle)
        XCTAssertEqual(node1sByLocalRoot.text, "root only\n", node1sByLocalRoot.error)

        // Its opener's Release closes it.
        var release = FsRequest()
        release.handles = [handle]
        let released = try await gateway.call(gateway.local, "Release", release)
        XCTAssertEqual(released.errorNumber, 0, released.error)
        let afterRelease = try await read(gateway, gateway.local, handle)
        XCTAssertEqual(afterRelease.errno, EBADF)
        await gateway.stop()
    }

    func testLocksThroughTheContractConflictBetweenCallersAndRefuseBadRequests() async throws {
        try DiscoveryCluster.requireFUSE()
        try PythonClient.requireAndGenerate()
        let export = NSTemporaryDirectory() + "omx-locks-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        defer { removeTree(export) }
        try "0123456789\n".write(toFile: "\(export)/db", atomically: false, encoding: .utf8)
        let gateway = try Gateway(subnet: 102, export: export)
        func opened(_ client: RPCClient, _ flags: Int32) async throws -> UInt64 {
            var open = FsRequest(path: "db")
            open.flags = flags
            let answer = try await gateway.call(client, "Open", open)
            XCTAssertEqual(answer.errorNumber, 0, answer.error)
            return answer.handle
        }
        func lock(_ client: RPCClient, _ handle: UInt64, _ lock: FileLock?, _ method: String = "Lock") async throws -> FsResponse {
            var request = FsRequest()
            request.handle = handle
            request.lock = lock
            return try await gateway.call(client, method, request)
        }
        let ofNode2 = try await opened(gateway.node2, O_RDWR)
        let ofNode1 = try await opened(gateway.node1, O_RDWR)
        let taken = try await lock(gateway.node2, ofNode2, FileLock(type: .write, start: 0, length: 10, owner: 1))
        XCTAssertEqual(taken.errorNumber, 0, taken.error)
        XCTAssertTrue(taken.locksHeld)

        // Node 1's owner 1 is another owner than node 2's: refused while held, and told by whom.
        let refused = try await lock(gateway.node1, ofNode1, FileLock(type: .read, start: 5, length: 1, owner: 1))
        XCTAssertEqual(refused.errorNumber, EAGAIN)
        XCTAssertTrue(refused.error.contains("FSGateway.Lock db: lock: "), refused.error)
        let tested = try await lock(gateway.node1, ofNode1, FileLock(type: .write, owner: 1), "Getlk")
        XCTAssertEqual(tested.lock, FileLock(type: .write, start: 0, length: 10, owner: 0))
        let othersHandle = try await lock(gateway.node1, ofNode2, FileLock(type: .read, owner: 1))
        XCTAssertEqual(othersHandle.errorNumber, EBADF, "node 2's handle")

        // Bad requests, each named.
        let none = try await lock(gateway.node1, ofNode1, nil)
        XCTAssertEqual(none.errorNumber, EINVAL)
        XCTAssertTrue(none.error.contains("names no lock"), none.error)
        var unknown = FileLock(type: .read, owner: 1)
        unknown.typeNumber = 9
        let odd = try await lock(gateway.node1, ofNode1, unknown)
        XCTAssertEqual(odd.errorNumber, EINVAL)
        XCTAssertTrue(odd.error.contains("lock type 9"), odd.error)
        let writeOnly = try await opened(gateway.node1, O_WRONLY)
        let readThroughWriteOnly = try await lock(gateway.node1, writeOnly, FileLock(type: .read, start: 20, length: 1, owner: 1))
        XCTAssertEqual(readThroughWriteOnly.errorNumber, EBADF)
        XCTAssertTrue(readThroughWriteOnly.error.contains("needs the file open for reading"), readThroughWriteOnly.error)
        let backwards = try await lock(gateway.node1, ofNode1, FileLock(type: .read, start: -1, length: 1, owner: 1))
        XCTAssertEqual(backwards.errorNumber, EINVAL)

        // A client in another language, through the .proto contract: the same conflict, then
        // the lock once node 2 released the handle it was taken through.
        let script = """
            import sys
            sys.path.insert(0, sys.argv[1])
            from omx_client import Client
            from omx_proto import fsgateway_pb2 as fs
            with Client("unix:" + sys.argv[2]) as gateway:
                handle = gateway.call("FSGateway.Open", fs.FsRequest(path="db", flags=2), fs.FsResponse).handle
                want = fs.FileLock(type=fs.WRITE, start=0, length=1, owner=42)
                print(gateway.call("FSGateway.Lock", fs.FsRequest(handle=handle, lock=want), fs.FsResponse).error_number)
                gateway.call("FSGateway.Release", fs.FsRequest(handle=int(sys.argv[3])), fs.FsResponse)
            """
        let python = LocalCluster.runAbsolute(PythonClient.python, ["-B", "-c", script, PythonClient.directory, "\(gateway.cluster.runDir(1))/fsgateway-0.sock", "\(ofNode2)"])
        XCTAssertEqual(python.status, 0, python.stderr)
        XCTAssertEqual(python.stdout, "\(EAGAIN)\n", "the Python client is refused while node 2 holds the lock")
        let afterRelease = try await lock(gateway.node1, ofNode1, FileLock(type: .write, start: 0, length: 10, owner: 1))
        XCTAssertEqual(afterRelease.errorNumber, 0, "the lock went with node 2's released handle: \(afterRelease.error)")
        await gateway.stop()
    }

    func testALocalUserReachesFilesThroughItsSupplementaryGroupsAndNoOthers() async throws {
        try DiscoveryCluster.requireFUSE()
        try PythonClient.requireAndGenerate()
        let export = NSTemporaryDirectory() + "omx-groups-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: "\(export)/team", withIntermediateDirectories: true)
        defer { removeTree(export) }
        // A directory and a file only group 4242 may use, as a project's shared tree would be.
        XCTAssertEqual(chown("\(export)/team", 0, 4242), 0)
        XCTAssertEqual(chmod("\(export)/team", 0o770), 0)
        try "for the team\n".write(toFile: "\(export)/team/notes", atomically: false, encoding: .utf8)
        XCTAssertEqual(chown("\(export)/team/notes", 0, 4242), 0)
        XCTAssertEqual(chmod("\(export)/team/notes", 0o660), 0)
        let gateway = try Gateway(subnet: 85, export: export)

        // The Python client, as uid 65534 on the Unix socket: what it claims in the request is
        // ignored, the groups the kernel reports count.
        let script = """
            import sys
            sys.path.insert(0, sys.argv[1])
            from omx_client import Client
            from omx_proto import fsgateway_pb2 as fs
            with Client("unix:" + sys.argv[2]) as gateway:
                opened = gateway.call("FSGateway.Open", fs.FsRequest(path="team/notes", caller_groups=[4242]), fs.FsResponse)
                if opened.error_number:
                    print("open", opened.error_number)
                else:
                    answer = gateway.call("FSGateway.Read", fs.FsRequest(handle=opened.handle, size=4096), fs.FsResponse)
                    print("read", answer.error_number, answer.data.decode().strip())
                created = gateway.call("FSGateway.Open", fs.FsRequest(path="team/new", flags=0o101, mode=0o640), fs.FsResponse)
                print("create", created.error_number)
            """
        func asNobody(groups: [String]) -> CommandResult {
            LocalCluster.runAbsolute(
                "/usr/bin/setpriv",
                ["--reuid=65534", "--regid=65534"] + groups + [PythonClient.python, "-B", "-c", script, PythonClient.directory,
                 "\(gateway.cluster.runDir(1))/fsgateway-0.sock"])
        }
        let member = asNobody(groups: ["--groups=4242,4343"])
        XCTAssertEqual(member.status, 0, member.stderr)
        XCTAssertEqual(member.stdout, "read 0 for the team\ncreate 0\n", "a member of group 4242")
        var info = stat()
        XCTAssertEqual(stat("\(export)/team/new", &info), 0)
        XCTAssertEqual(info.st_uid, 65534, "created as the caller")
        XCTAssertEqual(unlink("\(export)/team/new"), 0)

        let stranger = asNobody(groups: ["--clear-groups"])
        XCTAssertEqual(stranger.status, 0, stranger.stderr)
        XCTAssertEqual(stranger.stdout, "open \(EACCES)\ncreate \(EACCES)\n", "no member of group 4242, whatever its request says")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(export)/team/new"))
        await gateway.stop()
    }

    func testFileTimesBeyondWhatNanosecondsHoldAreClampedNotFatal() async throws {
        try DiscoveryCluster.requireFUSE()
        let export = NSTemporaryDirectory() + "omx-times-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
        defer { removeTree(export) }
        // The years 2286 and 1938: any local user may set such times on their files.
        for (name, seconds) in [("future", 10_000_000_000), ("past", -1_000_000_000)] {
            XCTAssertTrue(FileManager.default.createFile(atPath: "\(export)/\(name)", contents: Data("x".utf8)))
            var times = [timespec(tv_sec: seconds, tv_nsec: 250_000_000), timespec(tv_sec: seconds, tv_nsec: 250_000_000)]
            XCTAssertEqual(utimensat(AT_FDCWD, "\(export)/\(name)", &times, 0), 0, "utimensat \(name): \(String(cString: strerror(errno)))")
        }
        let gateway = try Gateway(subnet: 82, export: export)
        let future = try await gateway.call(gateway.local, "Getattr", FsRequest(path: "future"))
        XCTAssertEqual(future.errorNumber, 0, future.error)
        XCTAssertEqual(future.attr?.mtimeNs, .max, "past what Int64 nanoseconds hold: clamped")
        let past = try await gateway.call(gateway.local, "Getattr", FsRequest(path: "past"))
        XCTAssertEqual(past.attr?.mtimeNs, -1_000_000_000 * 1_000_000_000 + 250_000_000)
        let listing = try await gateway.call(gateway.local, "Readdir", FsRequest(path: ""))
        XCTAssertEqual(Set(listing.entries.map(\.name)), ["future", "past"], "the gateway still answers: \(listing.error)")

        // A time before 1970 set through the gateway lands on the disk as it was given.
        var utimens = FsRequest(path: "past")
        utimens.atimeNs = -1_500_000_000
        utimens.mtimeNs = -1_500_000_000
        let changed = try await gateway.call(gateway.local, "Utimens", utimens)
        XCTAssertEqual(changed.errorNumber, 0, changed.error)
        var info = stat()
        XCTAssertEqual(stat("\(export)/past", &info), 0)
        XCTAssertEqual(info.st_mtim.tv_sec, -2)
        XCTAssertEqual(info.st_mtim.tv_nsec, 500_000_000)
        await gateway.stop()
    }

    func testAMountKeepsItsIdleOpenFilesWhileTheGatewayClosesForgottenOnes() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 83, nodes: 2, configText: "[mfs]\nlease_seconds = 4\n")
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 2)
        XCTAssertTrue(isMounted)
        let disk = "\(cluster.dir)/leases"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"

        // A file held open through node 1's mount, then unlinked on node 2's disk: opening it
        // again by path would find nothing, so it keeps working only if its handle stays open.
        let fd = open("\(remote)/kept", O_CREAT | O_RDWR, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0, String(cString: strerror(errno)))
        XCTAssertEqual(write(fd, "a", 1), 1)
        XCTAssertEqual(fsync(fd), 0)
        XCTAssertEqual(unlink("\(disk)/kept"), 0)
        // A handle nobody renews: opened over node 2's Unix socket by a caller that then goes quiet.
        let loop = try EventLoop()
        let quiet = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(2))/fsgateway-0.sock"), logger: Logger(label: "test"))
        var open = FsRequest(path: String(disk.dropFirst()))
        open.flags = O_RDONLY | O_DIRECTORY
        let forgotten = try await quiet.call("FSGateway.Open", open, returning: FsResponse.self)
        XCTAssertEqual(forgotten.errorNumber, 0, forgotten.error)

        try await Task.sleep(for: .seconds(10))  // two and a half leases
        XCTAssertEqual(write(fd, "b", 1), 1)
        XCTAssertEqual(fsync(fd), 0, "the idle file is still open at node 2: \(String(cString: strerror(errno)))")
        var bytes = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(pread(fd, &bytes, 8, 0), 2, String(cString: strerror(errno)))
        XCTAssertEqual(Array(bytes.prefix(2)), Array("ab".utf8))
        close(fd)
        var read = FsRequest()
        read.handle = forgotten.handle
        let expired = try await quiet.call("FSGateway.Fsync", read, returning: FsResponse.self)
        XCTAssertEqual(expired.errorNumber, EBADF, "the unrenewed handle was closed after its lease: \(expired.error)")
        await quiet.close()
        await loop.shutdown()
    }
}
