#include "uv_send.h"

#include <stdlib.h>
#include <string.h>

/* A write libuv could not finish at once: it owns a copy of the bytes. */
struct pending_write {
    uv_write_t request;
    char bytes[];
};

static void written(uv_write_t *request, int status) {
    (void)status;
    free(request);
}

int uv_send(uv_stream_t *stream, const char *bytes, size_t length) {
    uv_buf_t whole = uv_buf_init((char *)bytes, (unsigned)length);
    int sent = uv_try_write(stream, &whole, 1);
    size_t done = sent > 0 ? (size_t)sent : 0;
    if (done == length) return 0;
    struct pending_write *pending = malloc(sizeof(*pending) + length - done);
    memcpy(pending->bytes, bytes + done, length - done);
    uv_buf_t rest = uv_buf_init(pending->bytes, (unsigned)(length - done));
    int status = uv_write(&pending->request, stream, &rest, 1, written);
    if (status < 0) free(pending);
    return status;
}
