#include "CMigrator.h"
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
