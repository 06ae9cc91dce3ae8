import Foundation
import Logging
import Shared
import XCTest

/// oMFS's gateways on real local clusters: a migrated job keeps its file, a directory lists
/// whole in pages, no path leaves the export root, and each job's I/O is counted while reads
/// survive a lost instance.
final class MfsGatewaysEndToEndTests: XCTestCase {
    func testAMigratedJobKeepsWorkingOnItsMfsFile() async throws {
        try DiscoveryCluster.requireFUSE()
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 56, nodes: 2)
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 2)
        XCTAssertTrue(isMounted)
        let disk = "\(cluster.dir)/jobfiles"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let file = "\(cluster.dir)/node-1/mfs/1\(disk)/count.txt"
        let mfs = "\(cluster.dir)/node-1/mfs"
        // The job holds the file open (fd 3) across the migration, and asks /mfs where home is.
        let job = try cluster.run(["/bin/sh", "-c", "exec 3>>\(file); i=0; while :; do i=$((i+1)); echo \"$i $(readlink \(mfs)/home)\" >&3; sleep 0.05; done"], options: ["--node", "1"])
        try await Task.sleep(for: .milliseconds(800))
        let moved = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(moved.status, 0, moved.stderr)
        let before = (try? String(contentsOfFile: "\(disk)/count.txt", encoding: .utf8))?.count ?? 0
        try await Task.sleep(for: .milliseconds(800))
        let text = try String(contentsOfFile: "\(disk)/count.txt", encoding: .utf8)
        XCTAssertGreaterThan(text.count, before, "the migrated job still writes its /mfs file")
        _ = cluster.omx(["kill", "-KILL", job])
        let lines = text.split(separator: "\n")
        for (index, line) in lines.enumerated() {
            XCTAssertEqual(line, "\(index + 1) 1", "line \(index + 1): every number once, and home is node 1 wherever the job runs")
            if line != "\(index + 1) 1" { break }
        }
        await cluster.down()
    }

    func testADirectoryListsWholeInPagesThroughTheGatewayAndTheMount() async throws {
        // 30,000 entries of about 300 bytes each on the wire: several pages of about 4 MiB.
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 88, "crowded")
        let names = Set((0..<30_000).map { "entry-\($0)-" + String(repeating: "x", count: 200) })
        for name in names { close(open("\(disk)/\(name)", O_CREAT | O_WRONLY, 0o644)) }

        // Page by page from node 2's gateway: each page names where the next starts.
        let loop = try EventLoop()
        let gateway = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(2))/fsgateway-0.sock"), logger: Logger(label: "test"))
        var request = FsRequest(path: String(disk.dropFirst()))
        // Generous deadlines: the gateway may still be taking in the 30,000 creations' change
        // events (a debug build under load takes seconds); this checks what it answers.
        let whole = try await gateway.call("FSGateway.Readdir", request, returning: FsResponse.self, timeout: .seconds(120))
        XCTAssertEqual(whole.entries.count, names.count, "a client that asks for no pages gets the whole listing: \(whole.error)")
        XCTAssertEqual(whole.nextOffset, 0)
        request.paged = true
        var pages: [[String]] = []
        repeat {
            let page = try await gateway.call("FSGateway.Readdir", request, returning: FsResponse.self, timeout: .seconds(120))
            XCTAssertEqual(page.errorNumber, 0, page.error)
            pages.append(page.entries.map(\.name))
            request.offset = page.nextOffset
        } while request.offset != 0 && pages.count < 100
        XCTAssertGreaterThanOrEqual(pages.count, 3, "pages of \(pages.map(\.count))")
        XCTAssertEqual(pages.reduce(0) { $0 + $1.count }, names.count, "no entry twice")
        XCTAssertEqual(Set(pages.joined()), names)
        await gateway.close()
        await loop.shutdown()

        // Through node 1's mount, as ls sees it.
        let listed = try FileManager.default.contentsOfDirectory(atPath: "\(cluster.dir)/node-1/mfs/2\(disk)")
        XCTAssertEqual(listed.count, names.count)
        XCTAssertEqual(Set(listed), names)
        await cluster.down()
    }

    func testTheGatewayKeepsEveryPathBeneathItsExportRoot() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try LocalCluster(subnet: 52, nodes: 1)
        let export = "\(cluster.dir)/export"
        try FileManager.default.createDirectory(atPath: "\(export)/inner", withIntermediateDirectories: true)
        try "inside".write(toFile: "\(export)/inner/file", atomically: false, encoding: .utf8)
        XCTAssertEqual(symlink("/etc", "\(export)/absolute"), 0)
        XCTAssertEqual(symlink("../../../../../..", "\(export)/inner/up"), 0)
        try cluster.start(.fsgateway, node: 1, extra: ["--export", export])
        let loop = try EventLoop()
        let client = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(1))/fsgateway-0.sock"), logger: Logger(label: "test"))
        func call(_ method: String, _ path: String) async throws -> FsResponse {
            try await client.call("FSGateway.\(method)", FsRequest(path: path), returning: FsResponse.self)
        }
        let passwdOutside = try await call("Getattr", "../../../../etc/passwd")
        XCTAssertEqual(passwdOutside.errorNumber, ENOENT, "\"..\" stops at the export root: \(passwdOutside.error)")
        let viaAbsolute = try await call("Getattr", "absolute/passwd")
        XCTAssertEqual(viaAbsolute.errorNumber, ENOENT, "an absolute symlink resolves inside the export root")
        let viaUp = try await call("Readdir", "inner/up")
        XCTAssertEqual(Set(viaUp.entries.map(\.name)), ["absolute", "inner"], "climbing out lands on the export root")
        let inside = try await call("Getattr", "inner/../inner/file")
        XCTAssertEqual(inside.attr?.size, 6)
        XCTAssertTrue(passwdOutside.error.contains("../../../../etc/passwd"), "errors name the path: \(passwdOutside.error)")
        let statfs = try await call("Statfs", "")
        XCTAssertNotNil(statfs.statfs)
        XCTAssertEqual(mkfifo("\(export)/pipe", 0o666), 0)
        var open = FsRequest(path: "pipe")
        open.flags = O_RDONLY
        let fifo = try await client.call("FSGateway.Open", open, returning: FsResponse.self)
        XCTAssertEqual(fifo.errorNumber, EACCES, "fifos (and device nodes, sockets) are refused: \(fifo.error)")
        XCTAssertTrue(fifo.error.contains("not served"), fifo.error)
        await client.close()
        await loop.shutdown()
        cluster.stop()
    }

    func testGatewaysCountEachJobsIOAndReadsSurviveALostInstance() async throws {
        try DiscoveryCluster.requireFUSE()
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 53, nodes: 2, gateways: 2)
        let isMounted = await cluster.waitForMount(at: "\(cluster.dir)/node-1/mfs", nodes: 2)
        XCTAssertTrue(isMounted)
        let disk = "\(cluster.dir)/io"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"
        // A job on node 1 writes 3 MiB into node 2's files through node 1's mount.
        let result = cluster.omx(["run", "--node", "1", "--wait", "--", "/bin/sh", "-c", "head -c 3145728 /dev/zero > \(remote)/out && cat \(remote)/out > /dev/null"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let job = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let loop = try EventLoop()
        var written: UInt64 = 0
        var read: UInt64 = 0
        for instance in 0..<2 {
            let client = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(2))/fsgateway-\(instance).sock"), logger: Logger(label: "test"))
            let counters = try await client.call("FSGateway.Counters", FsRequest(), returning: FsResponse.self).counters
            for counter in counters where counter.job == job {
                XCTAssertEqual(counter.node, 1, "the I/O came from node 1, where the job ran")
                written += counter.bytesWritten
                read += counter.bytesRead
            }
            await client.close()
        }
        await loop.shutdown()
        XCTAssertEqual(written, 3 << 20, "node 2's gateways counted the job's writes")
        XCTAssertGreaterThanOrEqual(read, 3 << 20, "and its reads")

        // One of node 2's two gateway instances dies: reads go on through the other.
        kill(try XCTUnwrap(cluster.pid(2, "fsgateway-0")), SIGKILL)
        for attempt in 0..<10 {
            let attributes = try? FileManager.default.attributesOfItem(atPath: "\(remote)/out")
            XCTAssertEqual(attributes?[.size] as? Int, 3 << 20, "stat #\(attempt) after the loss")
            XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: remote)) ?? [], ["out"])
            try await Task.sleep(for: .milliseconds(100))
        }
        await cluster.down()
    }
}
