import Foundation

/// A seeded random mix of file calls made twice, through /mfs and on a local directory, by one
/// Python process; every answer (result, errno, bytes, size, mode, listing) must be the same.
/// Paths (create, write, truncate, rename, unlink, link, mkdir, rmdir, symlink, chmod, stat,
/// list) and open descriptors (open with each flag mix, pwrite, append, pread, ftruncate, fstat,
/// fchmod, close) are mixed, several descriptors open at once, across renames, unlinks and hard
/// links (a change through one name shows at once through the others). One difference is by
/// design: a file unlinked while open keeps a hidden name until it is closed, so its directory
/// stays and its other names count one link more meanwhile.
enum DifferentialFuzzer {
    static let source = #"""
        import errno, os, random, stat, sys, time
        mfs, ref, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        rng = random.Random(seed)
        names = ["a", "b", "c", "d/e", "d/f", "d", "g/h", "g"]
        held = []  # (mfs fd, local fd, name, flags)
        history = []
        def path(root, name): return os.path.join(root, name)
        def both(call):
            answers = []
            for side, root in enumerate((mfs, ref)):
                try: answers.append(("ok", call(root, side)))
                except OSError as error: answers.append(("error", errno.errorcode.get(error.errno, error.errno)))
            return answers
        def attributes(s): return (stat.S_IFMT(s.st_mode), stat.S_IMODE(s.st_mode), 0 if stat.S_ISDIR(s.st_mode) else s.st_size)
        def hidden_links(root, s):
            # The hidden names of the file, and those whose file cannot be told (in a directory
            # the user may list but not search).
            known = unknown = 0
            for top, _, files in os.walk(root):
                for f in files:
                    if not f.startswith(".fuse_hidden"): continue
                    try: known += os.lstat(os.path.join(top, f)).st_ino == s.st_ino
                    except PermissionError: unknown += 1
            return known, unknown
        def named(root, side, name):
            s = os.lstat(path(root, name))
            if stat.S_ISDIR(s.st_mode): return attributes(s)
            if side == 1 or s.st_nlink == 1: return attributes(s) + (s.st_nlink,)
            # The hidden names of files unlinked while open are links the disk has no more. The
            # kernel drops the last one after close(2) returned (at the release): asked again
            # until two looks 20 ms apart agree.
            def links(s):
                known, unknown = hidden_links(root, s)
                # Hidden names that cannot be told may or may not be this file's: the disk's
                # count is taken when it is one of those that may be right.
                disk = os.lstat(path(ref, name)).st_nlink
                return disk if s.st_nlink - known - unknown <= disk <= s.st_nlink - known else s.st_nlink - known
            counted = links(s)
            for _ in range(50):
                time.sleep(0.02)
                s = os.lstat(path(root, name))
                again = links(s)
                if again == counted: break
                counted = again
            return attributes(s) + (counted,)
        def opened(root, side, name, flags):
            fd = os.open(path(root, name), flags, 0o644)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.EISDIR, "a directory")
            return fd
        for step in range(count):
            kind = rng.randrange(21)
            a, b = rng.choice(names), rng.choice(names)
            h = rng.choice(held) if held else None
            offset, length = rng.randrange(0, 5000), rng.randrange(1, 3000)
            data = bytes([rng.randrange(256)]) * length
            if kind == 0: call = ("create", a, lambda r, s: os.close(os.open(path(r, a), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)))
            elif kind == 1: call = ("write", a, lambda r, s: (lambda fd: (os.pwrite(fd, data, offset), os.close(fd)))(os.open(path(r, a), os.O_WRONLY)))
            elif kind == 2: call = ("read", a, lambda r, s: open(path(r, a), "rb").read())
            elif kind == 3: call = ("truncate", a, lambda r, s: os.truncate(path(r, a), offset))
            elif kind == 4: call = ("unlink", a, lambda r, s: os.unlink(path(r, a)))
            elif kind == 5: call = ("rename", (a, b), lambda r, s: os.rename(path(r, a), path(r, b)))
            elif kind == 6: call = ("mkdir", a, lambda r, s: os.mkdir(path(r, a)))
            elif kind == 7: call = ("rmdir", a, lambda r, s: os.rmdir(path(r, a)))
            elif kind == 8: call = ("symlink", (a, b), lambda r, s: os.symlink(a, path(r, b)))
            elif kind == 9: call = ("chmod", a, lambda r, s: os.chmod(path(r, a), 0o600 + 0o44 * (offset % 2)))
            elif kind == 10: call = ("stat", a, lambda r, s: named(r, s, a))
            elif kind == 11: call = ("list", a, lambda r, s: sorted(n for n in os.listdir(path(r, a)) if not n.startswith(".fuse_hidden")))
            elif kind in (12, 13):
                flags = rng.choice([os.O_RDWR | os.O_CREAT, os.O_RDWR, os.O_RDWR | os.O_APPEND | os.O_CREAT, os.O_RDWR | os.O_TRUNC | os.O_CREAT, os.O_WRONLY | os.O_CREAT, os.O_RDONLY])
                answers = both(lambda r, s: opened(r, s, a, flags))
                if all(answer[0] == "ok" for answer in answers):
                    held.append((answers[0][1], answers[1][1], a, flags))
                    answers = [("ok", "open"), ("ok", "open")]
                else:
                    for answer in answers:
                        if answer[0] == "ok": os.close(answer[1])
                call = ("open", (a, flags), None)
            elif h and kind == 14: call = ("pwrite" if not h[3] & os.O_APPEND else "append", h[2], lambda r, s: os.pwrite(h[s], data, offset) if not h[3] & os.O_APPEND else os.write(h[s], data))
            elif h and kind == 15: call = ("pread", h[2], lambda r, s: os.pread(h[s], 4000, offset))
            elif h and kind == 16: call = ("ftruncate", h[2], lambda r, s: os.ftruncate(h[s], offset))
            elif h and kind == 17: call = ("fstat", h[2], lambda r, s: attributes(os.fstat(h[s])))
            elif h and kind == 18: call = ("fchmod", h[2], lambda r, s: os.fchmod(h[s], 0o600 + 0o40 * (offset % 2)))
            elif kind == 20: call = ("link", (a, b), lambda r, s: os.link(path(r, a), path(r, b)))
            elif h and kind == 19:
                held.remove(h)
                call = ("close", h[2], lambda r, s: os.close(h[s]))
            else: continue
            if call[2] is not None: answers = both(call[2])
            history.append((step, call[0], call[1], str(answers[1])[:60]))
            kept = {"rmdir": a, "rename": b}.get(call[0])
            if kept and answers == [("error", "ENOTEMPTY"), ("ok", None)] and os.path.isdir(path(mfs, kept)) and all(n.startswith(".fuse_hidden") for n in os.listdir(path(mfs, kept))):
                # Files unlinked while open stay as .fuse_hidden files until their last close (as
                # NFS's .nfs files): their directory stays too, and is not replaced by a rename.
                # So it does on the disk then.
                if call[0] == "rename": os.rename(path(ref, b), path(ref, a))
                os.mkdir(path(ref, kept))
                os.chmod(path(ref, kept), stat.S_IMODE(os.stat(path(mfs, kept)).st_mode))
                answers = [("kept", "open unlinked files")] * 2
            if call[0] in ("rename", "link") and answers[1] == ("error", "EACCES") and answers[0][0] == "error":
                # Two paths each failing for a reason: the kernel finds a missing or mistyped name
                # on its own before it asks the mount, which checks the permissions (/mfs has
                # no default_permissions: it keeps the node's ACLs).
                answers = [("error", "either")] * 2
            if answers[0] != answers[1]:
                print("step %d %s %s: through /mfs %s, on the disk %s" % (step, call[0], call[1], str(answers[0])[:120], str(answers[1])[:120]))
                for line in history[-12:-1]: print("  after", line)
                sys.exit(1)
        print("same %d" % len(history))
        """#

    /// Writes the program to `directory`; returns its path.
    static func write(in directory: String) throws -> String {
        let script = "\(directory)/differential.py"
        try source.write(toFile: script, atomically: true, encoding: .utf8)
        return script
    }
}
