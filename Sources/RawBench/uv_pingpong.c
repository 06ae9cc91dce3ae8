/*
 * The event-loop floor of a client: the ping-pong of `omx-rawbench pingpong`, made from one bare
 * libuv loop (non-blocking socket, epoll, read callbacks), as OMX's `RPCClient` makes its calls,
 * but with no Swift or task. Against the bare libuv server (uv_echo.c) it is the least a call
 * between two libuv loops can cost; with the protocol (omx_protocol.c) at both ends, the least
 * OMX's envelopes and signatures can cost on libuv loops.
 */
#include "uv_pingpong.h"
#include "uv_send.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* The one connection and its calls: the handle first (libuv hands the handle back). */
struct pingpong {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
    } handle;
    struct uv_pingpong_protocol *protocol;
    size_t body;
    long call, last; /* calls run from -count/10 (warm-up, not sampled) up to `last` */
    uint64_t started_ns, *samples_ns;
    uint8_t *request, *buffer;
    size_t request_capacity, capacity, filled;
    int failed;
};

static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void give_up(struct pingpong *state, const char *what) {
    fprintf(stderr, "omx-rawbench: pingpong-uv call %ld: %s\n", state->call, what);
    state->failed = 1;
    uv_stop(state->handle.stream.loop);
}

/* Writes the next call's frame. */
static void send_call(struct pingpong *state) {
    size_t size;
    state->started_ns = monotonic_ns();
    if (state->protocol) {
        struct uv_pingpong_protocol *p = state->protocol;
        size = omx_pack(p->signer, p->peer, (uint64_t)(state->call + state->last + 1), OMX__ENVELOPE_KIND__REQUEST, "Bench.Echo",
                        OMX__STATUS_CODE__OK, state->request + state->request_capacity / 2, state->body, state->request,
                        state->request_capacity / 2);
        if (size == 0) return give_up(state, "no room for the request");
    } else {
        uint32_t be = htonl((uint32_t)state->body);
        memcpy(state->request, &be, 4);
        size = 4 + state->body;
    }
    if (uv_send(&state->handle.stream, (const char *)state->request, size) < 0) give_up(state, "uv_write failed");
}

static void allocate(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct pingpong *state = (struct pingpong *)handle;
    (void)suggested;
    if (state->capacity - state->filled < 65536) {
        state->capacity = state->filled + 65536;
        state->buffer = realloc(state->buffer, state->capacity);
    }
    *buf = uv_buf_init((char *)state->buffer + state->filled, (unsigned)(state->capacity - state->filled));
}

/* Checks the answer in `payload`: the echoed body, or (protocol) an envelope answering this
   call with OK and the body. Returns 0, or -1 after giving up. */
static int check_answer(struct pingpong *state, const uint8_t *payload, size_t length) {
    if (!state->protocol) {
        if (length == state->body) return 0;
        give_up(state, "the echo is not the body sent");
        return -1;
    }
    struct uv_pingpong_protocol *p = state->protocol;
    const char *error = NULL;
    Omx__Envelope *answer = omx_open(&p->opened, p->signer, p->local, payload, length, &error);
    if (answer && answer->call_id == (uint64_t)(state->call + state->last + 1) && answer->status == OMX__STATUS_CODE__OK &&
        answer->body.len == state->body)
        return 0;
    give_up(state, answer ? (answer->error[0] ? answer->error : "unexpected answer") : error);
    return -1;
}

/* Takes the answer once it is whole, samples the call and makes the next one. */
static void received(uv_stream_t *stream, ssize_t count, const uv_buf_t *buf) {
    struct pingpong *state = (struct pingpong *)stream;
    (void)buf;
    if (count < 0) return give_up(state, uv_strerror((int)count));
    state->filled += (size_t)count;
    if (state->filled < 4) return;
    uint32_t be;
    memcpy(&be, state->buffer, 4);
    size_t frame = 4 + (size_t)ntohl(be);
    if (state->filled < frame) return;
    if (state->filled > frame) return give_up(state, "bytes came after the answer");
    if (check_answer(state, state->buffer + 4, frame - 4) < 0) return;
    uint64_t took = monotonic_ns() - state->started_ns;
    state->filled = 0;
    if (state->call >= 0) state->samples_ns[state->call] = took;
    if (++state->call == state->last) {
        uv_read_stop(stream);
        uv_stop(stream->loop);
        return;
    }
    send_call(state);
}

int uv_pingpong(int fd, int tcp, struct uv_pingpong_protocol *protocol, size_t body, long count, uint64_t *samples_ns) {
    uv_loop_t *loop = uv_default_loop();
    struct pingpong *state = calloc(1, sizeof(*state));
    state->protocol = protocol;
    state->body = body;
    state->call = -count / 10;
    state->last = count;
    state->samples_ns = samples_ns;
    /* The request's frame in the first half, its body (zeros) in the second. */
    state->request_capacity = 2 * (body + 512);
    state->request = calloc(1, state->request_capacity);
    int status = tcp ? uv_tcp_init(loop, &state->handle.tcp) : uv_pipe_init(loop, &state->handle.pipe, 0);
    if (status == 0) status = tcp ? uv_tcp_open(&state->handle.tcp, fd) : uv_pipe_open(&state->handle.pipe, fd);
    if (status == 0) status = uv_read_start(&state->handle.stream, allocate, received);
    if (status < 0) {
        fprintf(stderr, "omx-rawbench: pingpong-uv: %s\n", uv_strerror(status));
        return -1;
    }
    send_call(state);
    uv_run(loop, UV_RUN_DEFAULT);
    return state->failed ? -1 : 0;
}
