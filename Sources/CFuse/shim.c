#include "CFuse.h"
#include <stdio.h>
#include <stdlib.h>

static double cache_timeout = 1.0;

static void *omx_fuse_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
    // Large writes: up to 1 MiB per request, the gateways' chunk size.
    conn->max_write = 1 << 20;
    cfg->attr_timeout = cache_timeout;
    cfg->entry_timeout = cache_timeout;
    cfg->negative_timeout = 0;
    cfg->use_ino = 0;
    cfg->kernel_cache = 0;
    cfg->nullpath_ok = 0;
    return fuse_get_context()->private_data;
}

int omx_fuse_run(const char *mountpoint, const struct fuse_operations *ops, const char *options, double cache_seconds) {
    struct fuse_operations with_init = *ops;
    with_init.init = omx_fuse_init;
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
    if (fuse_set_signal_handlers(session) != 0) {
        fuse_unmount(fuse);
        fuse_destroy(fuse);
        return 3;
    }
    struct fuse_loop_config config = {.clone_fd = 0, .max_idle_threads = 16};
    int result = fuse_loop_mt(fuse, &config);
    fuse_remove_signal_handlers(session);
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    return result;
}

int omx_fuse_caller_groups(int size, gid_t *groups) {
    return fuse_getgroups(size, groups);
}
