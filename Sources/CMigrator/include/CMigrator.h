// What the Migrator needs from C: zlib's CRC-32, which checks migration image chunks end to
// end, prctl(2), which Swift cannot call (it is variadic), mallopt(3) from <malloc.h>, and
// the kernel's process events connector, which tells of every exec (for /mfs/lastexec).
#include <stddef.h>
#include <stdint.h>

/// CRC-32 (zlib, ISO-HDLC) of `length` bytes at `data`.
uint32_t omx_crc32(const uint8_t *data, size_t length);

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER), so
/// jobs whose launcher or CRIU exits stay its children. 0 on success, else -1 and errno.
int omx_become_child_subreaper(void);

/// Keeps allocations up to `bytes` in the heap (M_MMAP_THRESHOLD) and up to 8 x `bytes` of
/// free heap (M_TRIM_THRESHOLD), so 1 MiB chunk buffers are reused instead of being mapped
/// and zeroed afresh for every chunk.
void omx_heap_allocations_up_to(int bytes);

/// Subscribes to the kernel's process events (the proc connector, netlink; needs root).
/// Returns the socket (non-blocking), or -errno.
int omx_exec_events_open(void);

/// Reads the events waiting on `fd` and stores the pids (thread group ids) of processes that
/// called exec, up to `max` of them. Returns how many were stored (0 when the events were of
/// other kinds), -ENOBUFS when the kernel dropped events because we read too slowly (reading
/// may go on), -EAGAIN when none were waiting, or another -errno.
int omx_exec_events_next(int fd, int32_t *pids, int max);
