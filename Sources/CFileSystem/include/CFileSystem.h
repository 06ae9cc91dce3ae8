// What the FSGateway needs from the kernel that Swift's Glibc does not offer: openat2 with
// RESOLVE_IN_ROOT, per-thread credentials (glibc makes setgroups process-wide), renameat2,
// faccessat2 and preadv2 with RWF_NOWAIT.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// openat2(2) with `resolve` flags (RESOLVE_IN_ROOT = 0x10, RESOLVE_NO_MAGICLINKS = 0x02).
/// Returns the descriptor, or -1 and errno.
int omx_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve);

/// Sets this thread's file-system uid, gid and supplementary groups (raw syscalls: they
/// change the calling thread only); for a uid other than 0 its effective capabilities are
/// cleared too, and uid 0 brings them back. 0 on success; -1 and errno otherwise, with the
/// thread back to root's credentials.
int omx_set_thread_credentials(uid_t uid, gid_t gid, const gid_t *groups, size_t count);

/// renameat2(2). Returns 0, or -1 and errno.
int omx_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// faccessat2(2): checks with the thread's file-system ids (AT_EACCESS). 0, or -1 and errno.
int omx_faccessat2(int dirfd, const char *path, int mode, int flags);

/// pread(2) that takes only what the page cache holds (preadv2 with RWF_NOWAIT): the count
/// read, or -1 and errno (EAGAIN when the read would wait for the disk).
ssize_t omx_pread_cached(int fd, void *buffer, size_t size, off_t offset);

/// GNU open flags Swift's Glibc module does not show (values of x86-64 and arm64 Linux).
enum {
    OMX_O_PATH = 010000000,
    OMX_O_DIRECT = 040000,
    OMX_O_NOATIME = 01000000,
    OMX_AT_EACCESS = 0x200,
};

/// fcntl(2)'s open file description locks (Linux, <fcntl.h> with _GNU_SOURCE).
enum {
    OMX_F_OFD_GETLK = 36,
    OMX_F_OFD_SETLK = 37,
};

/// utimensat(2)'s special nanosecond values.
enum {
    OMX_UTIME_NOW = (1l << 30) - 1l,
    OMX_UTIME_OMIT = (1l << 30) - 2l,
};

// fanotify (fanotify.c): the gateway learns of changes made to its exported tree by anyone.

/// One change the kernel reported: what happened (`entry`: an entry was created, deleted or
/// moved; otherwise attributes or data changed; `directory`: to a directory), by which
/// process, and where: the file system (`fsid`), the directory (`handle`, for
/// open_by_handle_at) and the name in it ("" for the directory itself). `overflow`: the kernel
/// dropped events.
typedef struct omx_fanotify_event {
    int entry;
    int directory;
    int overflow;
    int32_t pid;
    int32_t fsid[2];
    const void *handle;
    const char *name;
} omx_fanotify_event;

/// A fanotify group reporting directory handles and names. Returns its descriptor or -errno.
int omx_fanotify_open(void);

/// Watches the whole file system that holds `path` (creations, deletions, moves, attribute
/// and data changes, of files and directories), and gives its id. 0, or -errno.
int omx_fanotify_watch(int fanotify_fd, const char *path, int32_t fsid[2]);

/// Parses the event at `*offset` of `buffer` (what a read of the group gave) into `event` and
/// moves `*offset` past it. Returns 1, or 0 when no complete event is left.
int omx_fanotify_next(const char *buffer, size_t length, size_t *offset, omx_fanotify_event *event);

/// Opens the directory of `handle` (O_PATH) on the file system that `mount_fd` lies on.
/// Returns the descriptor, or -1 and errno (ESTALE: it is gone).
int omx_fanotify_open_directory(int mount_fd, const void *handle);
