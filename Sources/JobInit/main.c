// omx-jobinit: starts one OMX job in a PID namespace of its own, as CRIU needs it.
//
//   omx-jobinit --spool DIR --cwd DIR --uid U --gid G [--groups G1,G2...] [--nice N] [--environ FILE] [--pidfile F] -- CMD ARGS...
//
// The outer process unshares a PID namespace, forks the namespace's init, writes the init's
// host pid to --pidfile and exits. The init (pid 1 inside) becomes a session leader, opens
// stdin (/dev/null), stdout and stderr (DIR/stdout, DIR/stderr, owned by the caller, mode
// 0600) itself, so CRIU finds every file inside the job, closes everything else, and starts
// CMD as the caller's uid, gid and supplementary groups (--groups; none without it), at nice value N
// (--nice; 0 without it, whatever the Migrator's own), in the caller's cwd, with the environment in FILE
// (NUL-separated NAME=VALUE entries, read and removed by the init). It runs as root with an
// environment of its own: the caller's (LD_PRELOAD ...) reaches CMD only, after the switch to
// the caller's ids. It forwards signals to CMD (a namespace init ignores signals it has no
// handler for), reaps orphans, and when CMD ends writes DIR/status ("exit N" or "signal N")
// and exits with CMD's status, which ends the namespace. DIR must be root's: the init opens
// its files as root.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t command_pid = 0;

static void forward(int signal) {
    if (command_pid > 0) kill(command_pid, signal);
}

static void fail(const char *what) {
    fprintf(stderr, "omx-jobinit: %s: %s\n", what, strerror(errno));
    _exit(127);
}

static int open_output(const char *spool, const char *name, uid_t uid, gid_t gid) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", spool, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) fail(path);
    if (fchown(fd, uid, gid) != 0) fail(path);
    return fd;
}

static void write_status(const char *spool, int status) {
    char path[4096], temporary[4096], text[64];
    snprintf(path, sizeof path, "%s/status", spool);
    snprintf(temporary, sizeof temporary, "%s/status.tmp", spool);
    int length = WIFSIGNALED(status) ? snprintf(text, sizeof text, "signal %d\n", WTERMSIG(status))
                                     : snprintf(text, sizeof text, "exit %d\n", WEXITSTATUS(status));
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return;
    if (write(fd, text, length) == length && fsync(fd) == 0) rename(temporary, path);
    close(fd);
}

/* The NULL-terminated entries of the NUL-separated environment file `path`, which is removed;
   an empty environment without one. */
static char **read_environment(const char *path) {
    static char *none[] = {NULL};
    if (!path) return none;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) fail(path);
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_size > (16 << 20)) fail(path);
    char *text = malloc((size_t)info.st_size + 1);
    size_t length = 0;
    while (text && length < (size_t)info.st_size) {
        ssize_t got = read(fd, text + length, (size_t)info.st_size - length);
        if (got <= 0) fail(path);
        length += (size_t)got;
    }
    close(fd);
    unlink(path);
    if (!text) fail("environment");
    text[length] = '\0';
    size_t count = 0;
    for (size_t i = 0; i < length; i++) count += text[i] == '\0';
    char **entries = calloc(count + 2, sizeof *entries);
    if (!entries) fail("environment");
    size_t entry = 0;
    for (size_t start = 0; start < length; start += strlen(text + start) + 1) entries[entry++] = text + start;
    return entries;
}

/* The supplementary groups of a --groups list ("" or "G1,G2,..."): their count, or -1 when an
   entry is no group id. */
static int parse_groups(const char *list, gid_t **groups) {
    size_t count = *list ? 1 : 0;
    for (const char *at = list; *at; at++) count += *at == ',';
    *groups = calloc(count + 1, sizeof **groups);
    if (!*groups) fail("groups");
    const char *at = list;
    for (size_t i = 0; i < count; i++) {
        char *end;
        errno = 0;
        unsigned long value = strtoul(at, &end, 10);
        if (errno != 0 || end == at || *at == '-' || value > 0xFFFFFFFEUL || (*end != ',' && *end != '\0')) return -1;
        (*groups)[i] = (gid_t)value;
        at = *end ? end + 1 : end;
    }
    return (int)count;
}

static int run_init(const char *spool, const char *cwd, uid_t uid, gid_t gid, const gid_t *groups, int group_count, int nice_value,
                    char **environment, char **command) {
    if (setsid() < 0) fail("setsid");
    int null = open("/dev/null", O_RDONLY);
    int out = open_output(spool, "stdout", uid, gid);
    int err = open_output(spool, "stderr", uid, gid);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) fail("standard files");
    syscall(SYS_close_range, 3, ~0U, 0);

    int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH};
    struct sigaction action = {0};
    action.sa_handler = forward;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &action, NULL);

    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        struct sigaction standard = {0};
        standard.sa_handler = SIG_DFL;
        for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &standard, NULL);
        if (setpgid(0, 0) != 0) fail("setpgid");
        // Still root: a caller's negative nice value is kept too (a Migrator that is no root
        // can only keep its own or raise it).
        if (setpriority(PRIO_PROCESS, 0, nice_value) != 0 && getuid() == 0) fail("setpriority");
        if (setgroups((size_t)group_count, groups) != 0 && uid != getuid()) fail("setgroups");
        if (setgid(gid) != 0) fail("setgid");
        if (setuid(uid) != 0) fail("setuid");
        // As the caller: a cwd they may not enter is refused, as it would be to them.
        if (chdir(cwd) != 0) fail(cwd);
        // The caller's environment, whose PATH execvp searches.
        environ = environment;
        execvp(command[0], command);
        fprintf(stderr, "omx-jobinit: %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    command_pid = child;
    for (;;) {
        int status;
        pid_t ended = waitpid(-1, &status, 0);
        if (ended < 0 && errno == EINTR) continue;
        if (ended < 0) fail("waitpid");
        if (ended == child) {
            write_status(spool, status);
            return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        }
    }
}

int main(int argc, char **argv) {
    const char *spool = NULL, *cwd = NULL, *pidfile = NULL, *environ_file = NULL, *group_list = "";
    long uid = -1, gid = -1, nice_value = 0;
    int index = 1;
    for (; index < argc; index++) {
        if (strcmp(argv[index], "--") == 0) { index++; break; }
        if (index + 1 >= argc) break;
        if (strcmp(argv[index], "--spool") == 0) spool = argv[++index];
        else if (strcmp(argv[index], "--cwd") == 0) cwd = argv[++index];
        else if (strcmp(argv[index], "--pidfile") == 0) pidfile = argv[++index];
        else if (strcmp(argv[index], "--environ") == 0) environ_file = argv[++index];
        else if (strcmp(argv[index], "--uid") == 0) uid = strtol(argv[++index], NULL, 10);
        else if (strcmp(argv[index], "--gid") == 0) gid = strtol(argv[++index], NULL, 10);
        else if (strcmp(argv[index], "--groups") == 0) group_list = argv[++index];
        else if (strcmp(argv[index], "--nice") == 0) nice_value = strtol(argv[++index], NULL, 10);
        else { fprintf(stderr, "omx-jobinit: unknown option %s\n", argv[index]); return 2; }
    }
    if (!spool || !cwd || uid < 0 || gid < 0 || nice_value < -20 || nice_value > 19 || index >= argc) {
        fprintf(stderr, "usage: omx-jobinit --spool DIR --cwd DIR --uid U --gid G [--groups G1,G2...] [--nice -20..19] [--environ FILE] [--pidfile F] -- CMD ARGS...\n");
        return 2;
    }
    gid_t *groups;
    int group_count = parse_groups(group_list, &groups);
    if (group_count < 0) {
        fprintf(stderr, "omx-jobinit: --groups %s: expected group ids separated by commas\n", group_list);
        return 2;
    }
    if (unshare(CLONE_NEWPID) != 0) fail("unshare(CLONE_NEWPID)");
    pid_t init = fork();
    if (init < 0) fail("fork");
    if (init == 0) _exit(run_init(spool, cwd, (uid_t)uid, (gid_t)gid, groups, group_count, (int)nice_value, read_environment(environ_file), argv + index));
    if (pidfile) {
        FILE *file = fopen(pidfile, "w");
        if (!file || fprintf(file, "%d\n", init) < 0 || fclose(file) != 0) fail(pidfile);
    }
    return 0;
}
