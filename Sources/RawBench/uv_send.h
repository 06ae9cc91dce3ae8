#ifndef OMX_RAWBENCH_UV_SEND_H
#define OMX_RAWBENCH_UV_SEND_H

#include <stddef.h>
#include <uv.h>

/* Writes `length` bytes to `stream`: at once when the socket takes them (uv_try_write, the
   common case), else the rest through a queued write that owns a copy. Returns 0, or libuv's
   error when the write cannot be queued. */
int uv_send(uv_stream_t *stream, const char *bytes, size_t length);

#endif
