/*
 * Frames of omx-rawbench's blocking sockets: a 4-byte big-endian length and the payload,
 * written and read whole; a read may poll for the start of an answer before it blocks.
 */
#include "frame_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads `len` bytes, polling for them (non-blocking reads, the CPU yielded between two) until
   `poll_until_ns` on the monotonic clock, then blocking. */
static int read_full_polling(int fd, void *buf, size_t len, uint64_t poll_until_ns) {
    char *p = buf;
    while (len > 0) {
        int polling = poll_until_ns != 0 && now_ns() < poll_until_ns;
        ssize_t n = recv(fd, p, len, polling ? MSG_DONTWAIT : 0);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (polling && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                sched_yield();
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) errno = ETIMEDOUT;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

int read_full(int fd, void *buf, size_t len) { return read_full_polling(fd, buf, len, 0); }

int write_full(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Reads one frame into *buf (grown as needed), polling for its header until `poll_until_ns`
   (0: blocking at once); returns its length, or -1 at end of stream. */
long read_frame(int fd, char **buf, size_t *cap, uint64_t poll_until_ns) {
    uint32_t be;
    if (read_full_polling(fd, &be, 4, poll_until_ns) <= 0) return -1;
    size_t len = ntohl(be);
    if (len > *cap) {
        *buf = realloc(*buf, len);
        *cap = len;
    }
    if (len > 0 && read_full(fd, *buf, len) <= 0) return -1;
    return (long)len;
}

int write_frame(int fd, const char *payload, size_t len) {
    char header[4];
    uint32_t be = htonl((uint32_t)len);
    memcpy(header, &be, 4);
    struct iovec parts[2] = {{header, 4}, {(void *)payload, len}};
    ssize_t n;
    do {
        n = writev(fd, parts, 2);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    size_t done = (size_t)n;
    if (done < 4) {
        if (write_full(fd, header + done, 4 - done) < 0) return -1;
        done = 4;
    }
    return write_full(fd, payload + (done - 4), len - (done - 4));
}
