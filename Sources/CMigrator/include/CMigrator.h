// What the Migrator needs from C: zlib's CRC-32, which checks migration image chunks end to
// end, and prctl(2), which Swift cannot call (it is variadic).
#include <stddef.h>
#include <stdint.h>

/// CRC-32 (zlib, ISO-HDLC) of `length` bytes at `data`.
uint32_t omx_crc32(const uint8_t *data, size_t length);

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER), so
/// jobs whose launcher or CRIU exits stay its children. 0 on success, else -1 and errno.
int omx_become_child_subreaper(void);
