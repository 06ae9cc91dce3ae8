#include "CMigrator.h"
#include <malloc.h>
#include <sys/prctl.h>
#include <zlib.h>

uint32_t omx_crc32(const uint8_t *data, size_t length) {
    uLong crc = crc32(0L, Z_NULL, 0);
    while (length > 0) {
        uInt piece = length > 0x40000000u ? 0x40000000u : (uInt)length;
        crc = crc32(crc, data, piece);
        data += piece;
        length -= piece;
    }
    return (uint32_t)crc;
}

int omx_become_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

void omx_heap_allocations_up_to(int bytes) {
    mallopt(M_MMAP_THRESHOLD, bytes);
    // Freed chunk buffers stay for the next chunk instead of going back to the kernel.
    mallopt(M_TRIM_THRESHOLD, 8 * bytes);
}
