/*
 * The event-loop floor of `omx bench rpc`: the same echo as `omx-rawbench serve`, served by one
 * bare libuv loop thread (non-blocking sockets, epoll, read callbacks), as every OMX service
 * serves, but with no envelope, authentication, Swift or task. What a raw client measures
 * against it is the least any server on a libuv loop can cost.
 *
 * Given a cluster key it is the protocol floor instead: each frame is an OMX envelope, checked
 * and answered as an OMX service answers `Bench.Echo` (omx_protocol.c), still with no Swift.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "uv_echo.h"
#include "omx_protocol.h"
#include "uv_send.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

/* One accepted connection: its handle first (libuv hands the handle back), then the bytes read
   and not yet echoed, and its share of the loop thread's CPU. */
struct echo_connection {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
    } handle;
    char *buffer;
    size_t capacity, filled;
    long frames;
    uint64_t cpu_start_ns, user_start_ns;
    /* Protocol floor only: this side's signer (TCP), the connection's two ends as signatures
       name them, the envelope being answered and the answers of one read. */
    struct omx_signer *signer;
    char local[32], peer[32];
    struct omx_opened opened;
    uint8_t *answers;
    size_t answers_capacity, filled_answers;
};

/* The protocol floor's signer (TCP) and whether frames are envelopes at all. */
static struct omx_signer server_signer;
static int speaks_protocol;

static uint64_t thread_cpu_ns(void) {
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    return (uint64_t)cpu.tv_sec * 1000000000ull + (uint64_t)cpu.tv_nsec;
}

static uint64_t thread_user_ns(void) {
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    return (uint64_t)usage.ru_utime.tv_sec * 1000000000ull + (uint64_t)usage.ru_utime.tv_usec * 1000ull;
}

static void fail(const char *what, int status) {
    fprintf(stderr, "omx-rawbench: %s: %s\n", what, uv_strerror(status));
    exit(1);
}

static void closed(uv_handle_t *handle) {
    struct echo_connection *connection = (struct echo_connection *)handle;
    free(connection->buffer);
    free(connection->answers);
    free(connection);
}

/* Reports the connection's frames and the loop thread's CPU time while it was open (one
   connection at a time is measured), in `serve`'s format. */
static void finish(struct echo_connection *connection) {
    printf("served %ld cpu_ns %llu user_ns %llu\n", connection->frames,
           (unsigned long long)(thread_cpu_ns() - connection->cpu_start_ns),
           (unsigned long long)(thread_user_ns() - connection->user_start_ns));
    fflush(stdout);
    uv_close((uv_handle_t *)&connection->handle, closed);
}

static void allocate(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    struct echo_connection *connection = (struct echo_connection *)handle;
    (void)suggested;
    if (connection->capacity - connection->filled < 65536) {
        connection->capacity = connection->filled + 65536;
        connection->buffer = realloc(connection->buffer, connection->capacity);
    }
    *buf = uv_buf_init(connection->buffer + connection->filled, (unsigned)(connection->capacity - connection->filled));
}

/* Echoes `length` bytes: at once when the socket takes them, else through a queued write. */
static void echo(struct echo_connection *connection, const char *bytes, size_t length) {
    int status = uv_send(&connection->handle.stream, bytes, length);
    if (status < 0) fail("uv_write", status);
}

/* Appends the answer to one envelope to the connection's answers: Bench.Echo's body, signed
   on TCP, or UNIMPLEMENTED (unsigned, as refusals may be) for any other method such as the
   Session a Swift client offers. Returns -1 when the envelope is refused. */
static int answer(struct echo_connection *connection, const uint8_t *payload, size_t length) {
    const char *error = NULL;
    Omx__Envelope *request = omx_open(&connection->opened, connection->signer, connection->local, payload, length, &error);
    if (!request) {
        fprintf(stderr, "omx-rawbench: refused an envelope from %s: %s\n", connection->peer, error);
        return -1;
    }
    int echoes = strcmp(request->method, "Bench.Echo") == 0;
    size_t room = 256 + strlen(request->method) + request->body.len;
    if (connection->answers_capacity - connection->filled_answers < room) {
        connection->answers_capacity = connection->filled_answers + room + 65536;
        connection->answers = realloc(connection->answers, connection->answers_capacity);
    }
    size_t packed = omx_pack(echoes ? connection->signer : NULL, connection->peer, request->call_id, OMX__ENVELOPE_KIND__RESPONSE,
                             request->method, echoes ? OMX__STATUS_CODE__OK : OMX__STATUS_CODE__UNIMPLEMENTED,
                             echoes ? request->body.data : NULL, echoes ? request->body.len : 0,
                             connection->answers + connection->filled_answers, connection->answers_capacity - connection->filled_answers);
    if (packed == 0) {
        fprintf(stderr, "omx-rawbench: no room to answer call %llu of %s\n", (unsigned long long)request->call_id, connection->peer);
        return -1;
    }
    connection->filled_answers += packed;
    return 0;
}

/* Answers every whole frame read so far in one write: the frames themselves (an echo's answers
   are its requests' bytes), or the protocol floor's answers to them. */
static void received(uv_stream_t *stream, ssize_t count, const uv_buf_t *buf) {
    struct echo_connection *connection = (struct echo_connection *)stream;
    (void)buf;
    if (count < 0) {
        finish(connection);
        return;
    }
    connection->filled += (size_t)count;
    size_t whole = 0;
    connection->filled_answers = 0;
    while (connection->filled - whole >= 4) {
        uint32_t be;
        memcpy(&be, connection->buffer + whole, 4);
        size_t frame = 4 + (size_t)ntohl(be);
        if (connection->filled - whole < frame) break;
        if (speaks_protocol && answer(connection, (const uint8_t *)connection->buffer + whole + 4, frame - 4) < 0) {
            finish(connection);
            return;
        }
        whole += frame;
        connection->frames++;
    }
    if (whole == 0) return;
    if (speaks_protocol) {
        echo(connection, (const char *)connection->answers, connection->filled_answers);
    } else {
        echo(connection, connection->buffer, whole);
    }
    memmove(connection->buffer, connection->buffer + whole, connection->filled - whole);
    connection->filled -= whole;
}

static void accepted(uv_stream_t *listener, int status) {
    if (status < 0) fail("listen", status);
    struct echo_connection *connection = calloc(1, sizeof(*connection));
    if (listener->type == UV_TCP) {
        uv_tcp_init(listener->loop, &connection->handle.tcp);
    } else {
        uv_pipe_init(listener->loop, &connection->handle.pipe, 0);
    }
    if ((status = uv_accept(listener, &connection->handle.stream)) < 0) fail("accept", status);
    if (listener->type == UV_TCP) {
        uv_tcp_nodelay(&connection->handle.tcp, 1);
        uv_os_fd_t fd;
        uv_fileno((uv_handle_t *)&connection->handle, &fd);
        omx_socket_end(fd, 1, connection->local, sizeof(connection->local));
        omx_socket_end(fd, 0, connection->peer, sizeof(connection->peer));
        connection->signer = speaks_protocol ? &server_signer : NULL;
    }
    connection->cpu_start_ns = thread_cpu_ns();
    connection->user_start_ns = thread_user_ns();
    if ((status = uv_read_start(&connection->handle.stream, allocate, received)) < 0) fail("uv_read_start", status);
}

int serve_uv_echo(const char *tcp_host, int tcp_port, const char *unix_path, const char *key_path) {
    if (key_path) {
        if (omx_signer_load(&server_signer, key_path, 1) < 0) return 1;
        speaks_protocol = 1;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t tcp;
    uv_pipe_t unix_listener;
    struct sockaddr_in address;
    int status;
    if ((status = uv_ip4_addr(tcp_host, tcp_port, &address)) < 0) fail("address", status);
    uv_tcp_init(loop, &tcp);
    if ((status = uv_tcp_bind(&tcp, (const struct sockaddr *)&address, 0)) < 0) fail("bind tcp", status);
    if ((status = uv_listen((uv_stream_t *)&tcp, 128, accepted)) < 0) fail("listen tcp", status);
    uv_pipe_init(loop, &unix_listener, 0);
    remove(unix_path);
    if ((status = uv_pipe_bind(&unix_listener, unix_path)) < 0) fail("bind unix", status);
    if ((status = uv_listen((uv_stream_t *)&unix_listener, 128, accepted)) < 0) fail("listen unix", status);
    printf("ready\n");
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
