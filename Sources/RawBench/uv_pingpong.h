#ifndef OMX_RAWBENCH_UV_PINGPONG_H
#define OMX_RAWBENCH_UV_PINGPONG_H

#include <stddef.h>
#include <stdint.h>

#include "omx_protocol.h"

/* A client speaking OMX's protocol: its signer on TCP (NULL on a Unix socket), its connection's
   ends as signatures name them, the answer being read. */
struct uv_pingpong_protocol {
    struct omx_signer *signer;
    const char *local, *peer;
    struct omx_opened opened;
};

/* Makes `count` echo calls of `body` zero bytes one after the other, after a tenth as many to
   warm up, from one bare libuv loop on `fd` (a connected socket, TCP when `tcp`): raw frames,
   or OMX envelopes when `protocol` is given. Each call's round trip goes to samples_ns.
   Returns 0, or -1 with a message on stderr. */
int uv_pingpong(int fd, int tcp, struct uv_pingpong_protocol *protocol, size_t body, long count, uint64_t *samples_ns);

#endif
