// libfuse 3 for the /mfs mount: the high-level API's headers at API version 3.5, and the
// calls Swift cannot make directly (they are macros over versioned symbols).
#define FUSE_USE_VERSION 35
#include <fuse3/fuse.h>

/// Mounts `ops` at `mountpoint` with the comma-separated mount `options` and serves requests
/// on several threads until unmounted or signalled (SIGTERM, SIGINT, SIGHUP). Attribute and
/// entry caches last `cache_seconds`. Returns 0 on a clean end.
int omx_fuse_run(const char *mountpoint, const struct fuse_operations *ops, const char *options, double cache_seconds);

/// The calling process's supplementary groups (fuse_getgroups); their number, or -1.
int omx_fuse_caller_groups(int size, gid_t *groups);
