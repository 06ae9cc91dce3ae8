import Foundation
import Logging
import Shared
import XCTest

/// File names are bytes: names that are no UTF-8 (Latin-1 ones, say) list, open, change and
/// come back byte for byte through another node's /mfs, and the gateway sends them in the wire
/// form any protobuf library takes (proto/README.md, "File names").
final class FileNamesEndToEndTests: XCTestCase {
    /// `directory` + "/" + `name`, NUL-terminated, for the C calls.
    private func path(_ directory: String, _ name: [UInt8]) -> [CChar] {
        (Array(directory.utf8) + [UInt8(ascii: "/")] + name + [0]).map { CChar(bitPattern: $0) }
    }

    /// The names in `directory` as the kernel gives them ("." and ".." left out).
    private func listing(_ directory: String) -> Set<[UInt8]> {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: Set<[UInt8]> = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name != [0x2E] && name != [0x2E, 0x2E] { names.insert(name) }
        }
        return names
    }

    private func contents(_ path: [CChar]) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &buffer, buffer.count)
        return count >= 0 ? Array(buffer[..<count]) : nil
    }

    private func create(_ path: [CChar], _ text: String) -> Bool {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, text, text.utf8.count) == text.utf8.count
    }

    func testNamesThatAreNoUTF8WorkThroughAnotherNodesMountByteForByte() async throws {
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 91, "names")
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"

        let latin1: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".txt".utf8)  // "café.txt" in Latin-1
        let ownEscape = Array("x\u{EF85}y".utf8)  // a UTF-8 name holding a character of the escape range
        let directory: [UInt8] = [0xFF, 0xFE, 0x41]
        let link: [UInt8] = Array("link".utf8) + [0xE8]
        XCTAssertTrue(create(path(disk, latin1), "latin1"))
        XCTAssertTrue(create(path(disk, ownEscape), "escaped"))
        XCTAssertEqual(mkdir(path(disk, directory), 0o755), 0)
        XCTAssertTrue(create(path(disk, directory + Array("/inner".utf8)), "inner"))
        XCTAssertEqual(symlink(path(".", latin1), path(disk, link)), 0)

        // Listed, read and stat'ed through node 1's mount as on node 2's disk.
        XCTAssertEqual(listing(remote), [latin1, ownEscape, directory, link])
        XCTAssertEqual(contents(path(remote, latin1)), Array("latin1".utf8))
        XCTAssertEqual(contents(path(remote, ownEscape)), Array("escaped".utf8))
        XCTAssertEqual(contents(path(remote, directory + Array("/inner".utf8))), Array("inner".utf8))
        var target = [CChar](repeating: 0, count: 256)
        let length = readlink(path(remote, link), &target, target.count)
        XCTAssertEqual(length >= 0 ? target[..<length].map { UInt8(bitPattern: $0) } : [], Array("./".utf8) + latin1, "the link's target, byte for byte")
        XCTAssertEqual(contents(path(remote, link)), Array("latin1".utf8), "followed through the mount")

        // Created, renamed, linked and removed through the mount: on the disk with the same bytes.
        let created: [UInt8] = Array("new".utf8) + [0xE8, 0x80]
        let renamed: [UInt8] = [0xA0] + Array("renamed".utf8)
        XCTAssertTrue(create(path(remote, created), "made on node 1"))
        XCTAssertEqual(contents(path(disk, created)), Array("made on node 1".utf8))
        XCTAssertEqual(rename(path(remote, created), path(remote, renamed)), 0)
        XCTAssertEqual(contents(path(disk, renamed)), Array("made on node 1".utf8))
        let symlinked: [UInt8] = Array("to-dir".utf8) + [0x99]
        XCTAssertEqual(symlink(directory.map { CChar(bitPattern: $0) } + [0], path(remote, symlinked)), 0)
        var diskTarget = [CChar](repeating: 0, count: 256)
        let diskLength = readlink(path(disk, symlinked), &diskTarget, diskTarget.count)
        XCTAssertEqual(diskLength >= 0 ? diskTarget[..<diskLength].map { UInt8(bitPattern: $0) } : [], directory, "a link made through the mount holds the bytes given")
        XCTAssertEqual(unlink(path(remote, latin1)), 0)
        XCTAssertEqual(listing(disk), [ownEscape, directory, link, renamed, symlinked])

        // Two names that Swift's strings take for equal (U+00E9, and "e" + U+0301) are two files
        // to the mount's cache too, each with its own attributes.
        try FileManager.default.createDirectory(atPath: "\(disk)/unicode", withIntermediateDirectories: true)
        let composed = Array("unicode/caf\u{E9}".utf8)
        let decomposed = Array("unicode/cafe\u{301}".utf8)
        XCTAssertTrue(create(path(disk, composed), "composed, the longer"))
        XCTAssertTrue(create(path(disk, decomposed), "decomposed"))
        func size(_ name: [UInt8]) -> Int? {
            var info = stat()
            return stat(path(remote, name), &info) == 0 ? Int(info.st_size) : nil
        }
        XCTAssertEqual([size(composed), size(decomposed)], [20, 10])
        try await Task.sleep(for: .milliseconds(1_200))  // past the kernel's own second: the mount's cache answers
        XCTAssertEqual([size(composed), size(decomposed)], [20, 10], "each name has its own size")

        // The gateway's own answer: strings in the wire form, which read back to the bytes.
        let loop = try EventLoop()
        let gateway = RPCClient(loop: loop, endpoint: .unix(path: "\(cluster.runDir(2))/fsgateway-0.sock"), logger: Logger(label: "test"))
        let answer = try await gateway.call("FSGateway.Readdir", FsRequest(path: String(disk.dropFirst())), returning: FsResponse.self)
        XCTAssertEqual(answer.errorNumber, 0, answer.error)
        XCTAssertEqual(
            Set(answer.entries.map(\.name)),
            ["x\u{EFEE}\u{EFBE}\u{EF85}y", "\u{EFFF}\u{EFFE}A", "link\u{EFE8}", "\u{EFA0}renamed", "to-dir\u{EF99}", "unicode"])
        // Two wire names for one name are refused, so that no check of one misses the other.
        let alias = try await gateway.call(
            "FSGateway.Getattr", FsRequest(path: String(disk.dropFirst()) + "/donn\u{EFC3}\u{EFA9}es"), returning: FsResponse.self)
        XCTAssertEqual(alias.errorNumber, EINVAL, "the bytes of \"données\" written as escapes: \(alias.error)")
        XCTAssertTrue(alias.error.contains("wire form"), alias.error)
        await gateway.close()
        await loop.shutdown()
        await cluster.down()
    }

    func testAJobGetsItsArgumentsEnvironmentAndDirectoryByteForByteWhereverItRuns() async throws {
        try DiscoveryCluster.requireCRIU()
        let cluster = try DiscoveryCluster(subnet: 93, nodes: 2)
        // From a directory named in Latin-1, with an argument in Latin-1 and a variable holding
        // such a byte and the UTF-8 of U+EF85 (a character of the wire form's escapes).
        let started = LocalCluster.runAbsolute(
            "/bin/sh",
            [
                "-c", """
                directory="$1/$(printf 'D\\351j\\340')"
                mkdir -p "$directory" && cd "$directory" || exit 1
                OMX_BYTES="$(printf 'v\\351\\356\\276\\205')" exec "$2" run -- /bin/sh -c \
                    'while :; do pwd -P; printf "%s\\n" "$1" "$OMX_BYTES"; sleep 0.2; done' job "$(printf 'a\\351')" "$(printf 'b\\033[2J')"
                """, "sh", cluster.dir, siblingExecutable("omx"),
            ],
            environment: ["OMX_MAP": cluster.mapPath, "OMX_KEY": cluster.keyPath, "OMX_RUN_DIR": cluster.runDir(1)])
        guard started.status == 0 else {
            await cluster.down()
            return XCTFail("omx run from a directory named in Latin-1: \(started.stderr)")
        }
        let job = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let expected = Array("\(cluster.dir)/D".utf8) + [0xE9, 0x6A, 0xE0, 0x0A, 0x61, 0xE9, 0x0A, 0x76, 0xE9, 0xEE, 0xBE, 0x85, 0x0A]
        func output() -> [UInt8] { (try? Array(Data(contentsOf: URL(fileURLWithPath: "\(cluster.spool(of: job))/stdout")))) ?? [] }
        func printedSince(_ offset: Int) -> Bool {
            let text = output()
            return text.count > offset && text[offset...].starts(with: expected)
        }
        let printed = await cluster.waitFor(seconds: 10) { printedSince(0) }
        XCTAssertNotNil(printed, "the job's cwd, argument and variable are the caller's bytes: \(output())")
        XCTAssertTrue(
            cluster.omx(["mps"]).stdout.contains("job a\\xE9 b?[2J"),
            "omx mps shows a byte that is no UTF-8 as \\xNN, and no escape sequence of a job's: \(cluster.omx(["mps"]).stdout)")

        let migrated = cluster.omx(["migrate", job, "2"])
        XCTAssertEqual(migrated.status, 0, migrated.stderr)
        let lines = output().count
        let after = await cluster.waitFor(seconds: 10) {
            // A whole round printed on node 2 begins at a "/" starting a line.
            let text = output()
            return (lines..<text.count).contains { text[$0] == UInt8(ascii: "/") && text[$0 - 1] == 0x0A && printedSince($0) }
        }
        XCTAssertNotNil(after, "on node 2 the restored job has them too")
        XCTAssertEqual(cluster.job(job)?["where"] as? Int, 2)
        _ = cluster.omx(["kill", "-KILL", job])
        await cluster.down()
    }
}
