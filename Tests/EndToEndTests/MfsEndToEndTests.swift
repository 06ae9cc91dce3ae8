import Foundation
import Logging
import Shared
import XCTest

/// oMFS on real local clusters: the FSGateway services and every node's real FUSE mount at
/// D/node-K/mfs (`omx cluster up`), driven with ordinary file calls.
final class MfsEndToEndTests: XCTestCase {
    /// Waits until node `node`'s mount lists the live nodes.
    private func mounted(_ cluster: DiscoveryCluster, _ node: Int, nodes: Int) async -> Bool {
        await cluster.waitForMount(at: "\(cluster.dir)/node-\(node)/mfs", nodes: nodes)
    }

    private func errnoOf(_ body: () -> Int32) -> Int32 {
        errno = 0
        return body() < 0 ? errno : 0
    }

    func testFilesBehaveThroughTheMountAsOnTheDisk() async throws {
        let (cluster, disk) = try await DiscoveryCluster.mountedWithDirectory(subnet: 50, "scratch")
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"
        let files = FileManager.default

        // Create, write at offsets, append, read back; the disk holds the same bytes.
        XCTAssertTrue(files.createFile(atPath: "\(remote)/a.txt", contents: Data("hello world".utf8)))
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: "\(remote)/a.txt"))
        try handle.seek(toOffset: 6)
        handle.write(Data("WORLD".utf8))
        try handle.close()
        let appender = open("\(remote)/a.txt", O_WRONLY | O_APPEND)
        XCTAssertGreaterThanOrEqual(appender, 0)
        XCTAssertEqual(write(appender, "!\n", 2), 2)
        close(appender)
        XCTAssertEqual(try String(contentsOfFile: "\(disk)/a.txt", encoding: .utf8), "hello WORLD!\n")
        XCTAssertEqual(try String(contentsOfFile: "\(remote)/a.txt", encoding: .utf8), "hello WORLD!\n")

        // Several chunks: 3 MiB and a bit, byte for byte.
        let big = Data((0..<(3 << 20) + 12345).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) })
        try big.write(to: URL(fileURLWithPath: "\(remote)/big.bin"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(disk)/big.bin")), big)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(remote)/big.bin")), big)
        XCTAssertEqual(truncate("\(remote)/big.bin", 1000), 0)
        XCTAssertEqual((try files.attributesOfItem(atPath: "\(disk)/big.bin"))[.size] as? Int, 1000)

        // O_DIRECT (dd oflag=direct, databases): written and read through the mount.
        #if arch(x86_64)
        let oDirect: Int32 = 0o40000  // O_DIRECT, which Swift's Glibc does not export
        #else
        let oDirect: Int32 = 0o200000
        #endif
        var memory: UnsafeMutableRawPointer?
        XCTAssertEqual(posix_memalign(&memory, 4096, 8192), 0)
        let aligned = try XCTUnwrap(memory)
        defer { free(aligned) }
        memset(aligned, 0x5A, 8192)
        let directWrite = open("\(remote)/direct.bin", O_WRONLY | O_CREAT | oDirect, 0o644)
        XCTAssertGreaterThanOrEqual(directWrite, 0)
        XCTAssertEqual(write(directWrite, aligned, 8192), 8192)
        XCTAssertEqual(close(directWrite), 0, "the O_DIRECT writes landed: \(String(cString: strerror(errno)))")
        let directRead = open("\(remote)/direct.bin", O_RDONLY | oDirect)
        XCTAssertEqual(read(directRead, aligned, 8192), 8192)
        close(directRead)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(disk)/direct.bin")), Data(repeating: 0x5A, count: 8192))
        XCTAssertEqual(unlink("\(remote)/direct.bin"), 0)

        // A fifo made through the mount is a pipe of this node's kernel (as on NFS); no devices.
        XCTAssertEqual(mkfifo("\(remote)/fifo", 0o600), 0, String(cString: strerror(errno)))
        var fifo = stat()
        XCTAssertEqual(stat("\(disk)/fifo", &fifo), 0)
        XCTAssertEqual(fifo.st_mode & S_IFMT, S_IFIFO)
        let piped = LocalCluster.runAbsolute("/bin/sh", ["-c", "echo through > '\(remote)/fifo' & cat '\(remote)/fifo'; wait"])
        XCTAssertEqual(piped.stdout, "through\n", piped.stderr)
        XCTAssertEqual(unlink("\(remote)/fifo"), 0)
        XCTAssertEqual(errnoOf { mknod("\(remote)/null", S_IFCHR | 0o666, 0x103) }, EPERM)

        // The caller's umask, and only the caller's, takes bits from a new entry's mode (the
        // gateway's own is 022): a group-writable file and directory stay group-writable.
        XCTAssertEqual(mkdir("\(disk)/group", 0o775), 0)
        XCTAssertEqual(chmod("\(disk)/group", 0o2775), 0)
        let previous = umask(0o002)
        let made = open("\(remote)/shared.txt", O_WRONLY | O_CREAT, 0o666)
        XCTAssertGreaterThanOrEqual(made, 0)
        XCTAssertEqual(mkdir("\(remote)/shared", 0o777), 0)
        XCTAssertEqual(mkdir("\(remote)/group/sub", 0o777), 0)
        umask(previous)
        close(made)
        var created = stat()
        XCTAssertEqual(stat("\(disk)/shared.txt", &created), 0)
        XCTAssertEqual(created.st_mode & 0o777, 0o664, "a file created under umask 002")
        XCTAssertEqual(stat("\(disk)/shared", &created), 0)
        XCTAssertEqual(created.st_mode & 0o777, 0o775, "a directory made under umask 002")
        XCTAssertEqual(stat("\(disk)/group/sub", &created), 0)
        XCTAssertEqual(created.st_mode & 0o7777, 0o2775, "a directory made in a setgid one inherits the bit")
        XCTAssertEqual(rmdir("\(disk)/group/sub"), 0)
        XCTAssertEqual(rmdir("\(disk)/group"), 0)
        XCTAssertEqual(unlink("\(remote)/shared.txt"), 0)
        XCTAssertEqual(rmdir("\(remote)/shared"), 0)

        // Directories, rename (also over an existing file), links, modes, removal.
        XCTAssertEqual(mkdir("\(remote)/sub", 0o750), 0)
        XCTAssertEqual(rename("\(remote)/a.txt", "\(remote)/sub/b.txt"), 0)
        XCTAssertTrue(files.createFile(atPath: "\(remote)/c.txt", contents: Data("c".utf8)))
        XCTAssertEqual(rename("\(remote)/c.txt", "\(remote)/sub/b.txt"), 0, "rename over an existing file")
        XCTAssertEqual(try String(contentsOfFile: "\(disk)/sub/b.txt", encoding: .utf8), "c")
        // renameat2(RENAME_EXCHANGE) in a directory the mount made: both names stay, swapped.
        XCTAssertTrue(files.createFile(atPath: "\(remote)/sub/e.txt", contents: Data("e".utf8)))
        let exchange = "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); "
            + "sys.exit(0 if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) == 0 else ctypes.get_errno())"
        let exchanged = LocalCluster.runAbsolute("/usr/bin/python3", ["-c", exchange, "\(remote)/sub/b.txt", "\(remote)/sub/e.txt"])
        XCTAssertEqual(exchanged.status, 0, "RENAME_EXCHANGE through the mount: \(exchanged.stderr)")
        XCTAssertEqual(try String(contentsOfFile: "\(remote)/sub/b.txt", encoding: .utf8), "e", "both names are still there")
        XCTAssertEqual(try String(contentsOfFile: "\(remote)/sub/e.txt", encoding: .utf8), "c")
        XCTAssertEqual(rename("\(remote)/sub/e.txt", "\(remote)/sub/b.txt"), 0)
        XCTAssertEqual(errnoOf { rmdir("\(remote)/sub") }, ENOTEMPTY)
        XCTAssertEqual(symlink("sub/b.txt", "\(remote)/link"), 0)
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: "\(remote)/link"), "sub/b.txt")
        XCTAssertEqual(try String(contentsOfFile: "\(remote)/link", encoding: .utf8), "c", "the kernel follows the link through the mount")
        XCTAssertEqual(link("\(remote)/sub/b.txt", "\(remote)/hard"), 0)
        var info = stat()
        XCTAssertEqual(stat("\(disk)/hard", &info), 0)
        XCTAssertEqual(info.st_nlink, 2)
        // Hard links are one file through the mount too: cp onto its own link refuses instead
        // of emptying it, and other files have other numbers.
        var linked = stat(), other = stat()
        XCTAssertEqual(stat("\(remote)/hard", &info), 0)
        XCTAssertEqual(stat("\(remote)/sub/b.txt", &linked), 0)
        XCTAssertEqual(stat("\(remote)/big.bin", &other), 0)
        XCTAssertEqual(info.st_ino, linked.st_ino, "two names of one file, one inode number")
        XCTAssertNotEqual(info.st_ino, other.st_ino)
        let copied = LocalCluster.runAbsolute("/bin/cp", ["\(remote)/hard", "\(remote)/sub/b.txt"])
        XCTAssertNotEqual(copied.status, 0, "cp sees the same file")
        XCTAssertEqual(try String(contentsOfFile: "\(disk)/sub/b.txt", encoding: .utf8), "c", "and left it whole")
        XCTAssertEqual(chmod("\(remote)/hard", 0o600), 0)
        XCTAssertEqual(stat("\(disk)/sub/b.txt", &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600)
        XCTAssertEqual(chown("\(remote)/hard", 65534, 65534), 0)
        XCTAssertEqual(stat("\(disk)/sub/b.txt", &info), 0)
        XCTAssertEqual(info.st_uid, 65534, "chown reached the disk")
        var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 123), timespec(tv_sec: 1_500_000_000, tv_nsec: 456)]
        XCTAssertEqual(utimensat(AT_FDCWD, "\(remote)/hard", &times, 0), 0)
        XCTAssertEqual(stat("\(disk)/sub/b.txt", &info), 0)
        XCTAssertEqual(info.st_mtim.tv_sec, 1_500_000_000, "utimens reached the disk")
        XCTAssertEqual(info.st_atim.tv_nsec, 123)
        XCTAssertEqual(errnoOf { mkdir("\(remote)/sub", 0o755) }, EEXIST)
        XCTAssertEqual(errnoOf { open("\(remote)/hard", O_WRONLY | O_CREAT | O_EXCL, 0o644) }, EEXIST)
        XCTAssertEqual(Set(try files.contentsOfDirectory(atPath: remote)), ["big.bin", "sub", "link", "hard"])
        XCTAssertEqual(errnoOf { rename("\(remote)/hard", "\(cluster.dir)/node-1/mfs/1\(disk)/x") }, EXDEV, "no rename across nodes")
        for path in ["link", "hard", "sub/b.txt", "big.bin"] { XCTAssertEqual(unlink("\(remote)/\(path)"), 0, path) }
        XCTAssertEqual(rmdir("\(remote)/sub"), 0)
        XCTAssertEqual(try files.contentsOfDirectory(atPath: disk), [])
        XCTAssertEqual(errnoOf { open("\(remote)/missing", O_RDONLY) }, ENOENT)

        // A directory of thousands of entries.
        try files.createDirectory(atPath: "\(disk)/many", withIntermediateDirectories: true)
        for index in 0..<3000 { XCTAssertTrue(files.createFile(atPath: "\(disk)/many/f\(index)", contents: nil)) }
        XCTAssertEqual(try files.contentsOfDirectory(atPath: "\(remote)/many").count, 3000)
        try files.removeItem(atPath: "\(disk)/many")

        // statfs: the exported file system's real figures (df).
        var through = statvfs()
        var direct = statvfs()
        XCTAssertEqual(statvfs(remote, &through), 0)
        XCTAssertEqual(statvfs(disk, &direct), 0)
        XCTAssertEqual(through.f_blocks, direct.f_blocks)
        XCTAssertEqual(through.f_frsize, direct.f_frsize)

        // /proc, /sys, /dev and the mounts themselves are not served (fifos and devices: see
        // the export-root test; the kernel opens special files on the client side itself).
        for hidden in ["/proc/self/status", "/sys/kernel", "/dev/null", "\(cluster.dir)/node-1/mfs/2", "\(cluster.dir)/node-2/mfs/1"] {
            XCTAssertFalse(files.fileExists(atPath: "\(cluster.dir)/node-1/mfs/2\(hidden)"), "\(hidden) is not exported")
        }
        XCTAssertFalse(try files.contentsOfDirectory(atPath: "\(cluster.dir)/node-1/mfs/2/").contains("proc"))

        // The magic entries, per calling process.
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: "\(cluster.dir)/node-1/mfs/here"), "1")
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: "\(cluster.dir)/node-2/mfs/here"), "2")
        XCTAssertEqual(try files.destinationOfSymbolicLink(atPath: "\(cluster.dir)/node-2/mfs/home"), "2", "a process that is no job: its home is the local node")
        await cluster.down()
    }

    func testEveryOperationRunsAsTheCallingUser() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 51, nodes: 2)
        let isMounted = await mounted(cluster, 1, nodes: 2)
        XCTAssertTrue(isMounted)
        let disk = "\(cluster.dir)/perm"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        chmod(cluster.dir, 0o755)
        chmod(disk, 0o777)
        try "secret".write(toFile: "\(disk)/secret", atomically: false, encoding: .utf8)
        chmod("\(disk)/secret", 0o600)
        let remote = "\(cluster.dir)/node-1/mfs/2\(disk)"
        let asNobody = { (script: String) in
            LocalCluster.runAbsolute("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", script])
        }
        let denied = asNobody("cat \(remote)/secret")
        XCTAssertNotEqual(denied.status, 0)
        XCTAssertTrue(denied.stderr.contains("Permission denied"), denied.stderr)
        let created = asNobody("echo mine > \(remote)/mine && cat \(remote)/mine")
        XCTAssertEqual(created.stdout, "mine\n", created.stderr)
        var info = stat()
        XCTAssertEqual(stat("\(disk)/mine", &info), 0)
        XCTAssertEqual(info.st_uid, 65534, "the file belongs to the caller, not to the gateway")
        XCTAssertNotEqual(asNobody("chmod 777 \(remote)/secret").status, 0, "nobody may chmod root's file")
        // A directory others may read but not search: its names are listed, as on the disk.
        try FileManager.default.createDirectory(atPath: "\(disk)/listonly", withIntermediateDirectories: true)
        try "x".write(toFile: "\(disk)/listonly/inside", atomically: false, encoding: .utf8)
        chmod("\(disk)/listonly", 0o744)
        XCTAssertEqual(asNobody("ls -1 --color=never \(disk)/listonly").stdout, "inside\n", "on the disk")
        let listed = asNobody("ls -1 --color=never \(remote)/listonly")
        XCTAssertEqual(listed.stdout, "inside\n", "through the mount: \(listed.stderr)")
        XCTAssertNotEqual(asNobody("cat \(remote)/listonly/inside").status, 0, "but not searched")
        // A directory's mode or owner changed through the mount holds at once, also for the
        // names beneath it the kernel has cached.
        try FileManager.default.createDirectory(atPath: "\(disk)/closing", withIntermediateDirectories: true)
        try "x".write(toFile: "\(disk)/closing/inside", atomically: false, encoding: .utf8)
        chmod("\(disk)/closing/inside", 0o644)
        let statInside = "stat -c %s \(remote)/closing/inside"
        chmod("\(disk)/closing", 0o755)
        XCTAssertEqual(asNobody(statInside).stdout, "1\n", "a directory all may search")
        // The kernel is told to look names up again (FUSE_NOTIFY_INC_EPOCH) from Linux 6.16 on.
        let release = LocalCluster.runAbsolute("/bin/uname", ["-r"]).stdout.split(separator: ".").prefix(2).compactMap { Int($0) }
        let expires = release.count == 2 && (release[0], release[1]) >= (6, 16)
        if !expires { print("WARNING: kernel \(release) before 6.16 cannot be told to look names up again: the checks of directory permission changes are skipped") }
        XCTAssertEqual(chmod("\(remote)/closing", 0o700), 0)
        if expires { XCTAssertNotEqual(asNobody(statInside).status, 0, "no more once its mode is 700 through the mount") }
        XCTAssertEqual(chown("\(disk)/closing", 65534, 65534), 0)
        XCTAssertEqual(asNobody(statInside).stdout, "1\n", "its owner's")
        XCTAssertEqual(chown("\(remote)/closing", 0, 0), 0)
        if expires { XCTAssertNotEqual(asNobody(statInside).status, 0, "no more once root owns it through the mount") }
        // A file held open stays the holder's to fstat, fchmod, fchown and futimens when its
        // directory may no longer be searched (the kernel asks the mount for them by the file's
        // path: the mount asks the caller's syscall), but not to stat or chmod by its path.
        let held = """
            import os, sys
            fd = os.open(sys.argv[1] + "/held", os.O_RDWR | os.O_CREAT, 0o644)
            os.write(fd, b"12345")
            os.chmod(sys.argv[1], 0o600)
            try: os.stat(sys.argv[1] + "/other")
            except PermissionError: pass
            os.fchmod(fd, 0o640)
            os.fchown(fd, -1, 65534)
            os.utime(fd, (1000000000, 1000000000))
            print(os.fstat(fd).st_size, oct(os.fstat(fd).st_mode & 0o777), int(os.fstat(fd).st_mtime))
            # Through its descriptor's link in /proc, as through the descriptor.
            os.chmod("/proc/self/fd/%d" % fd, 0o640)
            print(os.stat("/proc/self/fd/%d" % fd).st_size)
            # By its path the same user gets no further than on the disk, the file open or not.
            for name, call in (("chmod", lambda p: os.chmod(p, 0o600)), ("utime", lambda p: os.utime(p, None)), ("stat", os.stat)):
                try: call(sys.argv[1] + "/held"); print(name, "reached by path")
                except PermissionError: print(name, "refused by path")
            """
        try FileManager.default.createDirectory(atPath: "\(disk)/mine-closing", withIntermediateDirectories: true)
        XCTAssertEqual(chown("\(disk)/mine-closing", 65534, 65534), 0)
        let asNobodyPython = ["--reuid=65534", "--regid=65534", "--clear-groups", PythonClient.python, "-B", "-c"]
        let fstatted = LocalCluster.runAbsolute("/usr/bin/setpriv", asNobodyPython + [held, "\(remote)/mine-closing"])
        // (A stat by path needs the kernel to look the name up again, which it is told from 6.16.)
        let refusals = "chmod refused by path\nutime refused by path\n" + (expires ? "stat refused by path\n" : "")
        XCTAssertTrue(fstatted.stdout.hasPrefix("5 0o640 1000000000\n5\n" + refusals), "as on the disk: \(fstatted.stdout)\(fstatted.stderr)")
        // Without the file open, the same user gets no further than on the disk.
        let unheld = LocalCluster.runAbsolute("/usr/bin/setpriv", asNobodyPython + ["import os, sys; os.chmod(sys.argv[1], 0o600)", "\(remote)/mine-closing/held"])
        XCTAssertTrue(unheld.stderr.contains("PermissionError"), "chmod by path of a file not held open: \(unheld.stderr)")
        await cluster.down()
    }

    func testReadsFromThePageCacheAndFromTheDiskGiveTheFilesBytes() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 66, nodes: 2)
        defer { _ = cluster.omx(["cluster", "down", "--dir", cluster.dir]) }
        let isMounted = await mounted(cluster, 1, nodes: 2)
        XCTAssertTrue(isMounted)
        let disk = "\(cluster.dir)/cached.bin"
        let payload = Data((0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) })
        try payload.write(to: URL(fileURLWithPath: disk))
        let through = URL(fileURLWithPath: "\(cluster.dir)/node-1/mfs/2\(disk)")
        // Just written: the gateway finds every page in the cache and answers on its loop.
        XCTAssertEqual(try Data(contentsOf: through), payload)
        XCTAssertGreaterThan(cluster.metric("omx_fs_reads_total", [#"from="cache""#]), 0)
        // Evicted from the cache: the reads wait for the disk, on the gateway's pool.
        let fd = open(disk, O_RDONLY)
        XCTAssertEqual(fsync(fd), 0)
        XCTAssertEqual(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0)
        close(fd)
        XCTAssertEqual(try Data(contentsOf: through), payload)
        XCTAssertGreaterThan(cluster.metric("omx_fs_reads_total", [#"from="disk""#]), 0)
    }

    func testConcurrentWritersThroughTwoMountsAndAGatewayRestartWhileAFileIsOpen() async throws {
        try DiscoveryCluster.requireFUSE()
        let cluster = try DiscoveryCluster(subnet: 55, nodes: 2)
        for node in 1...2 {
            let isMounted = await mounted(cluster, node, nodes: 2)
            XCTAssertTrue(isMounted)
        }
        let disk = "\(cluster.dir)/concurrent"
        try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
        let payloads = (0..<4).map { writer in Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* (writer + 3) &+ writer) }) }
        await withTaskGroup(of: Void.self) { group in
            for (writer, payload) in payloads.enumerated() {
                let path = "\(cluster.dir)/node-\(writer % 2 + 1)/mfs/2\(disk)/w\(writer)"
                group.addTask { try? payload.write(to: URL(fileURLWithPath: path)) }
            }
        }
        for (writer, payload) in payloads.enumerated() {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(disk)/w\(writer)")), payload, "writer \(writer) through node \(writer % 2 + 1)'s mount")
        }

        // An open file outlives a restart of the gateway that holds it.
        let fd = open("\(cluster.dir)/node-1/mfs/2\(disk)/open.txt", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(pwrite(fd, "before", 6, 0), 6)
        try Data("old contents".utf8).write(to: URL(fileURLWithPath: "\(disk)/replaced.txt"))
        let stale = open("\(cluster.dir)/node-1/mfs/2\(disk)/replaced.txt", O_RDONLY)
        XCTAssertGreaterThanOrEqual(stale, 0)
        cluster.kill9(2, "fsgateway-0")
        // Meanwhile another file takes the second one's name (as an editor saves).
        try Data("new contents".utf8).write(to: URL(fileURLWithPath: "\(disk)/replaced.txt"), options: .atomic)
        let restarted = cluster.omx(["cluster", "up", "--nodes", "2", "--dir", cluster.dir, "--first-address", "127.0.55.1", "--timeout", "5"])
        XCTAssertEqual(restarted.status, 0, restarted.stderr)
        let answering = await cluster.waitFor(seconds: 10) { cluster.omx(["ping", "fsgateway"], runDir: 2).status == 0 }
        XCTAssertNotNil(answering)
        XCTAssertEqual(pwrite(fd, "after", 5, 6), 5, "a write after the restart: \(String(cString: strerror(errno)))")
        var buffer = [UInt8](repeating: 0, count: 11)
        XCTAssertEqual(pread(fd, &buffer, 11, 0), 11)
        XCTAssertEqual(String(decoding: buffer, as: UTF8.self), "beforeafter")
        close(fd)
        var old = [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(pread(stale, &old, old.count, 0), -1, "the file open before is gone: not the new one's bytes \(String(decoding: old, as: UTF8.self))")
        XCTAssertEqual(errno, ESTALE)
        close(stale)
        XCTAssertEqual(try String(contentsOfFile: "\(disk)/open.txt", encoding: .utf8), "beforeafter")
        await cluster.down()
    }
}
