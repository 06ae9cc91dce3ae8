#define _GNU_SOURCE
#include "CFileSystem.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int omx_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned int)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int omx_set_thread_credentials(uid_t uid, gid_t gid, const gid_t *groups, size_t count) {
    if (syscall(SYS_setgroups, count, groups) != 0) return -1;
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    // setfsuid/setfsgid report no error: check that they took.
    if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid || (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int omx_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
}

int omx_faccessat2(int dirfd, const char *path, int mode, int flags) {
    return (int)syscall(SYS_faccessat2, dirfd, path, mode, flags);
}

ssize_t omx_pread_cached(int fd, void *buffer, size_t size, off_t offset) {
    struct iovec vector = {.iov_base = buffer, .iov_len = size};
    return preadv2(fd, &vector, 1, offset, RWF_NOWAIT);
}
