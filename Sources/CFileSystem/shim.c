#define _GNU_SOURCE
#include "CFileSystem.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
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

/* This thread's effective capabilities: none, or all it is permitted (raw syscalls: the
   calling thread only). */
static int set_effective_capabilities(int all) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) data[i].effective = all ? data[i].permitted : 0;
    return (int)syscall(SYS_capset, &header, data);
}

/* Back to the thread's own root credentials, whatever state a failed switch left. */
static void restore_root(void) {
    int saved = errno;
    set_effective_capabilities(1);
    syscall(SYS_setfsgid, 0);
    syscall(SYS_setfsuid, 0);
    syscall(SYS_setgroups, 0, NULL);
    errno = saved;
}

int omx_set_thread_credentials(uid_t uid, gid_t gid, const gid_t *groups, size_t count) {
    /* Back to root: the capabilities dropped for a user come back first (setgroups needs them). */
    if (uid == 0 && set_effective_capabilities(1) != 0) return -1;
    if (syscall(SYS_setgroups, count, groups) != 0) goto failed;
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    /* setfsuid/setfsgid report no error: check that they took. */
    if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid || (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) {
        errno = EPERM;
        goto failed;
    }
    /* For a user, none of root's other powers either: the file-system capabilities went with
       the fsuid, but quotas and reserved blocks (CAP_SYS_RESOURCE), ptrace access to /proc
       files (CAP_SYS_PTRACE) and the like would still be root's. */
    if (uid != 0 && set_effective_capabilities(0) != 0) goto failed;
    return 0;
failed:
    restore_root();
    return -1;
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
