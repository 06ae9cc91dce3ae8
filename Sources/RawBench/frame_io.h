#ifndef OMX_RAWBENCH_FRAME_IO_H
#define OMX_RAWBENCH_FRAME_IO_H

#include <stddef.h>
#include <stdint.h>

/* The monotonic clock, in nanoseconds. */
uint64_t now_ns(void);

/* Reads `len` bytes: 1 once they came, 0 at end of stream, -1 on an error (ETIMEDOUT when the
   socket's receive timeout passed). */
int read_full(int fd, void *buf, size_t len);

/* Writes `len` bytes: 1, or -1 on an error. */
int write_full(int fd, const void *buf, size_t len);

/* Reads one frame into *buf (grown as needed), polling for its header until `poll_until_ns`
   on `now_ns`'s clock (0: blocking at once); returns its length, or -1 at end of stream. */
long read_frame(int fd, char **buf, size_t *cap, uint64_t poll_until_ns);

/* Writes one frame: `len` as 4 big-endian bytes, then `payload`. */
int write_frame(int fd, const char *payload, size_t len);

#endif
