// libfuse 3 for the /mfs mount: the high-level API's headers at API version 3.5, and the
// calls Swift cannot make directly (they are macros over versioned symbols).
#define FUSE_USE_VERSION 35
#include <fuse3/fuse.h>

/// Mounts `ops` at `mountpoint` with the comma-separated mount `options` and serves requests
/// on several threads until unmounted or signalled (SIGTERM, SIGINT, SIGHUP). Attribute and
/// entry caches last `cache_seconds`. Once mounted, `omx_daemon_ready(ready_fd)` runs when
/// `ready_fd` >= 0. Returns 0 on a clean end.
int omx_fuse_run(const char *mountpoint, const struct fuse_operations *ops, const char *options, double cache_seconds, int ready_fd);
/// Goes to the background before any thread exists: forks; the parent exits 0 when the child
/// calls `omx_daemon_ready`, or with the child's status when it exits first. Returns, in the
/// child (a new session), the descriptor to pass to `omx_daemon_ready`; -1 if fork failed.
int omx_daemon_fork(void);
/// Tells the waiting parent that the mount is up, and detaches standard input, output and
/// error (to /dev/null).
void omx_daemon_ready(int fd);

/// Drops what the kernel caches of the file at `path` of this process's mount (its pages and
/// attributes), so they are read again from the file system. Any thread may call it; it waits
/// for the file's pages that are locked (a read or write of them in progress), so a request's
/// thread must not wait for it on a file whose pages that request's own call holds.
void omx_fuse_invalidate_path(const char *path);

/// Makes the kernel look up again every name of the mount serving the calling request before
/// its next use (FUSE_NOTIFY_INC_EPOCH, Linux 6.16 and later). Returns 0, or -errno when the
/// kernel does not take it (an older kernel: names then stay cached for their timeout).
int omx_fuse_expire_names(void);

/// The calling process's supplementary groups (fuse_getgroups); their number, or -1.
int omx_fuse_caller_groups(int size, gid_t *groups);
/// Whether the caller of the request being served is inside rename(2), renameat(2) or
/// renameat2(2) (its /proc syscall entry; 0 when that cannot be read).
int omx_fuse_caller_in_rename(void);
/// Whether the caller of the request being served named its file by a descriptor (those
/// calls reach the mount by the file's path): it is in fstat, fchmod or fchown, or in a call
/// taking a path whose path is none, empty (AT_EMPTY_PATH) or a descriptor's link
/// (/proc/PID/fd/N, /dev/fd/N); or in no system call (a fault on a mapping of the file). 1 or
/// 0, and -1 when its /proc syscall entry cannot be read.
int omx_fuse_caller_by_descriptor(void);
/// Keeps freed large buffers (the 1 MiB chunks of file I/O) in the heap for reuse instead of
/// giving each back to the kernel: malloc's mmap threshold and trim threshold raised, which
/// spares a page fault per 4 KiB of every chunk copied.
void omx_malloc_keep_large_buffers(void);
