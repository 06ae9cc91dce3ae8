import Foundation

/// A Python program that changes a file through one of its hard links and reads it through
/// another at once, as one process on the disk would see it: data appended and written, a
/// truncate, a mode, a time and the link count (after link, unlink and a rename over a name);
/// a rename between two names of one file leaves both, the target open or not.
/// Then two processes write through two names of one file at once while others read, which
/// end (a change through each name drops the kernel's cache of the other, whose pages a write
/// in progress may hold); SIGALRM ends a program that hangs. It prints "same N" or the first
/// difference.
enum HardLinkChecks {
    static let source = #"""
        import os, signal, sys, time
        root, rounds = sys.argv[1], int(sys.argv[2])
        # A call that hangs ends the program (SIGALRM, which the test runner may block) instead
        # of the test run.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
        signal.alarm(120)
        os.chdir(root)
        def expect(what, got, want):
            if got != want:
                print("%s: got %r, expected %r" % (what, got, want))
                sys.exit(1)
        checks = 0
        for round in range(rounds):
            for name in ("a", "b", "c", "x"):
                if os.path.lexists(name): os.unlink(name)
            with open("a", "w") as f: f.write("one\n")
            os.link("a", "b")
            expect("b before the append", open("b").read(), "one\n")
            fd = os.open("a", os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"twotwotwo\n")
            expect("size of b, a's append still open", os.stat("b").st_size, 14)
            os.close(fd)
            expect("b after the append through a", open("b").read(), "one\ntwotwotwo\n")
            held = os.open("b", os.O_RDWR)
            os.pwrite(held, b"XY", 0)
            expect("a after a write through b (still open)", open("a").read(), "XYe\ntwotwotwo\n")
            os.ftruncate(held, 3)
            expect("size of a after ftruncate through b", os.stat("a").st_size, 3)
            os.close(held)
            os.chmod("a", 0o600)
            expect("mode of b after chmod of a", os.stat("b").st_mode & 0o777, 0o600)
            os.utime("b", (1_000_000, 2_000_000))
            expect("mtime of a after utime of b", os.stat("a").st_mtime, 2_000_000)
            os.link("b", "c")
            expect("links of a after link b c", os.stat("a").st_nlink, 3)
            os.unlink("c")
            expect("links of a after unlink c", os.stat("a").st_nlink, 2)
            with open("x", "w") as f: f.write("other")
            os.rename("x", "b")
            expect("links of a after a rename over b", os.stat("a").st_nlink, 1)
            expect("b after the rename over it", open("b").read(), "other")
            # A rename between two names of one file leaves both, also when the target is open
            # (which libfuse hides first), in a directory made through the mount (whose cache
            # then knows its whole listing).
            d = "renamed-%d" % round
            os.mkdir(d)
            def names(): return sorted(n for n in os.listdir(d) if not n.startswith(".fuse_hidden"))
            with open(d + "/a", "w") as f: f.write("one")
            os.link(d + "/a", d + "/y")
            os.rename(d + "/a", d + "/y")
            expect("names after a rename of a onto its link y", names(), ["a", "y"])
            expect("links of a after it", os.stat(d + "/a").st_nlink, 2)
            held = os.open(d + "/y", os.O_RDONLY)
            os.rename(d + "/a", d + "/y")
            # (libfuse hid the open y first: its hidden name counts one link more until the
            # close, as for any file unlinked while open; through the open file libfuse counts
            # one less, as it does for every file it hid.)
            expect("names after a rename of a onto its link y, held open", names(), ["a", "y"])
            expect("links of a after it", os.stat(d + "/a").st_nlink, 3)
            expect("links of the open y after it", os.fstat(held).st_nlink, 2)
            os.close(held)
            checks += 16
        # Writers through two names at once, readers through both: no call may hang.
        for name in ("a", "b"):
            if os.path.lexists(name): os.unlink(name)
        with open("a", "wb") as f: f.write(b"\0" * 65536)
        os.link("a", "b")
        children = []
        for index, name in enumerate(("a", "b", "a", "b")):
            pid = os.fork()
            if pid == 0:
                signal.alarm(60)
                end = time.time() + 2
                fd = os.open(name, os.O_RDWR)
                while time.time() < end:
                    if index < 2: os.pwrite(fd, bytes([65 + index]) * 4096, 4096 * (int(time.time() * 1000) % 16))
                    else: os.pread(fd, 65536, 0)
                os.close(fd)
                os._exit(0)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            expect("exit status of a writer or reader", status, 0)
        expect("a and b after writes through both", open("a", "rb").read(), open("b", "rb").read())
        print("same %d" % (checks + 1))
        """#

    /// Writes the program to `directory`; returns its path.
    static func write(in directory: String) throws -> String {
        let script = "\(directory)/hard-links.py"
        try source.write(toFile: script, atomically: true, encoding: .utf8)
        return script
    }
}
