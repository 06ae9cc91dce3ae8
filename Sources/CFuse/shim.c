#define _GNU_SOURCE
#include "CFuse.h"
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <malloc.h>
#include <limits.h>
#include <string.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <fuse3/fuse_lowlevel.h>

static double cache_timeout = 1.0;

/// libfuse 3.12's loop, which takes the configuration of `fuse_loop_cfg_create` (the API 3.5
/// headers name only the loop of the older configuration).
int fuse_loop_mt_312(struct fuse *fuse, struct fuse_loop_config *config);

static void *omx_fuse_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    // Large writes: up to 1 MiB per request, the gateways' chunk size.
    conn->max_write = 1 << 20;
    cfg->attr_timeout = cache_timeout;
    cfg->entry_timeout = cache_timeout;
    cfg->negative_timeout = 0;
    cfg->use_ino = 1;  // MountInode: hard links share a number, other files practically never
    cfg->kernel_cache = 0;
    // Calls on open files and directories come without a path (the mount keeps where they
    // were opened): libfuse then holds no lock on the path while one runs, so a lock request
    // waiting for another node does not hold up an unlink or rename of the file meanwhile.
    cfg->nullpath_ok = 1;
    return fuse_get_context()->private_data;
}

/// The read-ahead setting of this mount's backing device, and the file system's own getattr.
static char readahead_path[128];
static atomic_flag readahead_raised = ATOMIC_FLAG_INIT;
static int (*next_getattr)(const char *, struct stat *, struct fuse_file_info *);

/// Finds the sysfs read-ahead setting of the FUSE mount at `mountpoint` in /proc/self/mountinfo
/// (a stat of the mount point itself would wait for the request loop, not running yet).
static void omx_find_readahead_setting(const char *mountpoint) {
    char resolved[PATH_MAX];
    if (!realpath(mountpoint, resolved)) return;
    FILE *mounts = fopen("/proc/self/mountinfo", "r");
    if (!mounts) return;
    char line[4096];
    while (fgets(line, sizeof line, mounts)) {
        unsigned id, parent;
        char numbers[64], root[PATH_MAX], point[PATH_MAX];
        if (sscanf(line, "%u %u %63s %4095s %4095s", &id, &parent, numbers, root, point) == 5 && strcmp(point, resolved) == 0)
            snprintf(readahead_path, sizeof readahead_path, "/sys/class/bdi/%s/read_ahead_kb", numbers);  // the last is the newest
    }
    fclose(mounts);
}

/// The first getattr raises the mount's read-ahead to 1 MiB: by then the kernel has applied
/// the INIT reply, which caps read-ahead at the 128 KiB it offered, and would otherwise cut
/// every large read into 128 KiB requests, each a round trip to a gateway.
static int omx_getattr_raising_readahead(const char *path, struct stat *stat, struct fuse_file_info *info) {
    if (!atomic_flag_test_and_set(&readahead_raised) && readahead_path[0]) {
        FILE *setting = fopen(readahead_path, "w");
        if (setting) {
            fputs("1024", setting);
            fclose(setting);
        }
    }
    return next_getattr(path, stat, info);
}

/// The mount this process serves, for invalidations made from any thread; cleared (under the
/// write lock) before it is destroyed.
static struct fuse *live_fuse;
static pthread_rwlock_t live_fuse_lock = PTHREAD_RWLOCK_INITIALIZER;

static void set_live_fuse(struct fuse *fuse) {
    pthread_rwlock_wrlock(&live_fuse_lock);
    live_fuse = fuse;
    pthread_rwlock_unlock(&live_fuse_lock);
}

/// The session the signals end, and the thread that runs its loop.
static struct fuse_session *volatile signalled_session;
static pthread_t loop_thread;

/// libfuse's own handler ends the session, but its loop only sees that when the signal
/// interrupts its thread's wait; in a process with other threads (ours has the event loop's
/// and more) the kernel may hand the signal to any of them, and the mount would not stop. This
/// one ends the session and passes the signal on to the loop's thread.
static void end_session(int signal) {
    struct fuse_session *session = signalled_session;
    if (session) fuse_session_exit(session);
    if (!pthread_equal(pthread_self(), loop_thread)) pthread_kill(loop_thread, signal);
}

static int end_session_on_signals(struct fuse_session *session) {
    signalled_session = session;
    loop_thread = pthread_self();
    struct sigaction action = {0};
    action.sa_handler = end_session;
    sigemptyset(&action.sa_mask);
    int signals[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    return 0;
}

/// After the loop: the session goes, and a second signal must not cut the unmount short.
static void stop_ending_session_on_signals(void) {
    int signals[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) signal(signals[i], SIG_IGN);
    signalled_session = NULL;
}

int omx_fuse_run(const char *mountpoint, const struct fuse_operations *ops, const char *options, double cache_seconds, int ready_fd) {
    struct fuse_operations with_init = *ops;
    with_init.init = omx_fuse_init;
    if (ops->getattr) {
        next_getattr = ops->getattr;
        with_init.getattr = omx_getattr_raising_readahead;
    }
    cache_timeout = cache_seconds;
    char *argv[] = {"omx-mfs", "-o", (char *)options, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct fuse *fuse = fuse_new(&args, &with_init, sizeof with_init, NULL);
    if (!fuse) return 1;
    if (fuse_mount(fuse, mountpoint) != 0) {
        fuse_destroy(fuse);
        return 2;
    }
    struct fuse_session *session = fuse_get_session(fuse);
    if (fuse_set_signal_handlers(session) != 0 || end_session_on_signals(session) != 0) {
        fuse_unmount(fuse);
        fuse_destroy(fuse);
        return 3;
    }
    omx_find_readahead_setting(mountpoint);
    if (ready_fd >= 0) omx_daemon_ready(ready_fd);
    // Up to 256 threads (libfuse's default is 10): a request that waits, such as a lock
    // another holds, keeps its thread, and the request that would end the wait needs one.
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_idle_threads(config, 16);
    fuse_loop_cfg_set_max_threads(config, 256);
    set_live_fuse(fuse);
    int result = fuse_loop_mt_312(fuse, config);
    fuse_loop_cfg_destroy(config);
    stop_ending_session_on_signals();
    fuse_remove_signal_handlers(session);
    // No invalidation may use the mount once it is unmounted (its descriptor is closed, and its
    // number may be taken by another file). One may be waiting in the kernel for pages that a
    // request the loop left unanswered holds: that wait ends only when the unmount ends the
    // connection, so it is given a second before the mount is unmounted under it.
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 1;
    int stopped = pthread_rwlock_timedwrlock(&live_fuse_lock, &deadline) == 0;
    if (stopped) {
        live_fuse = NULL;
        pthread_rwlock_unlock(&live_fuse_lock);
    }
    fuse_unmount(fuse);
    if (!stopped) set_live_fuse(NULL);
    fuse_destroy(fuse);
    return result;
}

void omx_fuse_invalidate_path(const char *path) {
    pthread_rwlock_rdlock(&live_fuse_lock);
    if (live_fuse) fuse_invalidate_path(live_fuse, path);
    pthread_rwlock_unlock(&live_fuse_lock);
}

int omx_fuse_expire_names(void) {
    struct fuse_context *context = fuse_get_context();
    if (!context || !context->fuse) return -EINVAL;
    // struct fuse_out_header of a notification: its length, the notification's code in place
    // of an error, and no request (unique 0); FUSE_NOTIFY_INC_EPOCH (8) has no body.
    struct { uint32_t len; int32_t code; uint64_t unique; } header = {sizeof header, 8, 0};
    ssize_t written = write(fuse_session_fd(fuse_get_session(context->fuse)), &header, sizeof header);
    return written == (ssize_t)sizeof header ? 0 : -errno;
}

int omx_fuse_caller_groups(int size, gid_t *groups) {
    return fuse_getgroups(size, groups);
}

/// The system call the caller of the request being served is blocked in, with its arguments
/// and its thread (the kernel names the calling thread: /proc/TID/syscall); -1 when it is in
/// none (a fault on a mapping), -2 when that cannot be read.
static long caller_syscall(unsigned long args[6], pid_t *caller) {
    struct fuse_context *context = fuse_get_context();
    if (!context || context->pid <= 0) return -2;
    *caller = context->pid;
    char path[64], text[256];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)context->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -2;
    ssize_t got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0) return -2;
    text[got] = 0;
    char *next = text;
    long number = strtol(text, &next, 10);
    if (next == text || number < 0) return -1;  // "running", or "-1 sp pc"
    for (int i = 0; i < 6; i++) args[i] = strtoul(next, &next, 0);
    return number;
}

int omx_fuse_caller_in_rename(void) {
    unsigned long args[6];
    pid_t caller;
    long number = caller_syscall(args, &caller);
#ifdef SYS_rename
    if (number == SYS_rename) return 1;
#endif
    return number == SYS_renameat || number == SYS_renameat2;
}

/// Whether a path a caller passed names a descriptor rather than a place in the tree: none
/// (NULL), empty (AT_EMPTY_PATH), or a descriptor's own link (/proc/PID/fd/N, /dev/fd/N). Read
/// from the caller's memory.
static int path_names_descriptor(pid_t caller, unsigned long address) {
    if (address == 0) return 1;
    char text[48];
    struct iovec local = {text, sizeof text - 1}, remote = {(void *)address, sizeof text - 1};
    ssize_t got = process_vm_readv(caller, &local, 1, &remote, 1, 0);
    if (got <= 0) return 0;
    text[got] = 0;
    if (text[0] == 0 || strncmp(text, "/dev/fd/", 8) == 0) return 1;
    return strncmp(text, "/proc/", 6) == 0 && strstr(text + 6, "/fd/") != NULL;
}

int omx_fuse_caller_by_descriptor(void) {
    unsigned long args[6];
    pid_t caller;
    long number = caller_syscall(args, &caller);
    if (number == -2) return -1;
    if (number == -1) return 1;
    int path;  // the argument that holds the path
    switch (number) {
#ifdef SYS_fstat
    case SYS_fstat:
#endif
    case SYS_fchmod:
    case SYS_fchown:
        return 1;
#ifdef SYS_newfstatat
    case SYS_newfstatat:
#endif
#ifdef SYS_fchmodat2
    case SYS_fchmodat2:
#endif
#ifdef SYS_futimesat
    case SYS_futimesat:
#endif
    case SYS_statx:
    case SYS_fchownat:
    case SYS_fchmodat:
    case SYS_utimensat:
        path = 1;
        break;
#ifdef SYS_stat
    case SYS_stat:
    case SYS_lstat:
    case SYS_chmod:
    case SYS_chown:
    case SYS_lchown:
    case SYS_utime:
    case SYS_utimes:
        path = 0;
        break;
#endif
    default:
        return 0;
    }
    return path_names_descriptor(caller, args[path]);
}

int omx_daemon_fork(void) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return -1;
    pid_t child = fork();
    if (child < 0) return -1;
    if (child > 0) {
        close(pipe_fds[1]);
        char ready = 1;
        ssize_t got;
        do got = read(pipe_fds[0], &ready, 1); while (got < 0 && errno == EINTR);
        if (got == 1 && ready == 0) _exit(0);
        int status = 0;
        if (waitpid(child, &status, 0) < 0) _exit(1);
        _exit(WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
    }
    close(pipe_fds[0]);
    // A daemon keeps nothing its caller gave it but standard input, output and error (a
    // caller may wait for every copy of a descriptor to close, as Foundation's Process does).
    int ready = pipe_fds[1];
    if (ready > 3) close_range(3, ready - 1, 0);
    close_range(ready + 1, ~0U, 0);
    setsid();
    return ready;
}

void omx_daemon_ready(int fd) {
    char ready = 0;
    ssize_t written;
    do written = write(fd, &ready, 1); while (written < 0 && errno == EINTR);
    close(fd);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2) close(null);
    }
}

void omx_malloc_keep_large_buffers(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}
