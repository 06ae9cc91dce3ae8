import Glibc
import Shared

/// A fresh ext4 file system in a sparse image file, loop-mounted for one side of a benchmark.
/// Every side starts from the same empty state: a file system that has just deleted thousands
/// of files creates new ones many times slower (ext4 skips recently freed inodes), which would
/// favour whichever side ran first. The loop device does direct I/O, so what is not in the
/// file system's own cache comes from the disk, as it would without the loop device.
struct ScratchFilesystem {
    let image: String
    let mountpoint: String
    let device: String

    /// Makes the file system (`sizeMiB` large) and mounts it at `mountpoint`.
    /// - Throws: `ConfigError` naming the step that failed and what it printed.
    init(image: String, mountpoint: String, sizeMiB: Int) throws {
        self.image = image
        self.mountpoint = mountpoint
        try makeDirectories(mountpoint)
        let fd = open(image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0, ftruncate(fd, off_t(sizeMiB) << 20) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            throw ConfigError("\(image): cannot create a \(sizeMiB) MiB image: \(reason)")
        }
        close(fd)
        let log = "\(image).log"
        try ScratchFilesystem.run("/usr/sbin/losetup", ["--direct-io=on", "--find", "--show", image], log: log)
        guard let device = try readTextFile(log).split(separator: "\n").last.map(String.init), device.hasPrefix("/dev/") else {
            throw ConfigError("losetup named no device for \(image): \((try? readTextFile(log)) ?? "")")
        }
        self.device = device
        do {
            try ScratchFilesystem.run("/usr/sbin/mkfs.ext4", ["-q", "-F", device], log: log)
            try ScratchFilesystem.run("/usr/bin/mount", [device, mountpoint], log: log)
        } catch {
            _ = try? ScratchFilesystem.run("/usr/sbin/losetup", ["-d", device], log: "/dev/null")
            throw error
        }
        // Detaching a device in use only marks it: it goes once unmounted, whatever ends this
        // process (no loop device, nor the space of its deleted image, is left behind).
        _ = try? ScratchFilesystem.run("/usr/sbin/losetup", ["-d", device], log: "/dev/null")
    }

    /// Unmounts the file system (at once, or as soon as nothing uses it), which also frees its
    /// loop device, and deletes its image.
    func remove() {
        _ = try? ScratchFilesystem.run("/usr/bin/umount", ["--lazy", mountpoint], log: "/dev/null")
        unlink(image)
        unlink("\(image).log")
    }

    private static func run(_ program: String, _ arguments: [String], log: String) throws {
        let status = try ChildProcess.spawn(program, arguments, stdoutPath: log, stderrPath: log).wait()
        guard status == 0 else {
            throw ConfigError("\(program) \(arguments.joined(separator: " ")) failed with status \(status): \((try? readTextFile(log)) ?? "")")
        }
    }
}
