/*
 * omx-rawbench: the raw-socket baseline of `omx bench rpc`.
 *
 * It does the same exchange as the RPC benchmark -- 4-byte big-endian length frames echoed by
 * a server -- with plain blocking sockets and no envelope, authentication or event loop, so the
 * benchmark can show what the RPC runtime costs on top of the kernel; and, to show where that
 * cost lies, the same from bare libuv loops and with OMX's protocol written in C.
 *
 *   omx-rawbench serve TCP_HOST TCP_PORT UNIX_PATH   -> "ready", then per closed connection
 *                                                       "served FRAMES cpu_ns NS user_ns NS"
 *   omx-rawbench serve-uv TCP_HOST TCP_PORT UNIX_PATH [KEY_FILE]
 *                                                    -> the same, served by one bare libuv loop
 *                                                       (uv_echo.c): the event-loop floor; with a
 *                                                       cluster key, OMX envelopes answered as
 *                                                       Bench.Echo: the protocol floor
 *   omx-rawbench pingpong tcp HOST PORT | unix PATH  BODY_BYTES COUNT [POLL_US]
 *                                                    -> every round trip in us, a line each, then
 *                                                       "cpu CLIENT_CPU_NS_PER_CALL CLIENT_USER_NS_PER_CALL";
 *                                                       with POLL_US, each answer is polled for that
 *                                                       long before the read blocks, as OMX's callers do
 *   omx-rawbench pingpong-omx tcp HOST PORT KEY_FILE | unix PATH  BODY_BYTES COUNT
 *                                                    -> the same, each call a Bench.Echo envelope
 *                                                       (signed on TCP, the answer checked), in C
 *                                                       (omx_protocol.c): the protocol floor's client
 *   omx-rawbench pingpong-uv ... | pingpong-uv-omx ...
 *                                                    -> as pingpong and pingpong-omx, the calls made
 *                                                       from one bare libuv loop (uv_pingpong.c):
 *                                                       the event-loop floor of a client
 *   omx-rawbench pipeline tcp HOST PORT | unix PATH  BODY_BYTES SECONDS WINDOW
 *                                                    -> "CALLS SECONDS", then "cpu CLIENT_CPU_NS_PER_CALL CLIENT_USER_NS_PER_CALL"
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "frame_io.h"
#include "omx_protocol.h"
#include "uv_echo.h"
#include "uv_pingpong.h"

static void die(const char *what) {
    fprintf(stderr, "omx-rawbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A client waits this long for an answer (SO_RCVTIMEO), then fails with ETIMEDOUT: a server
   that lost a frame ends the run instead of hanging it. */
static const int answer_timeout_seconds = 10;

static uint64_t timespec_ns(struct timespec ts) {
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t timeval_ns(struct timeval tv) {
    return (uint64_t)tv.tv_sec * 1000000000ull + (uint64_t)tv.tv_usec * 1000ull;
}

/* CPU time this process has used so far, ended threads included: user and system together. */
static uint64_t process_cpu_ns(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return timeval_ns(usage.ru_utime) + timeval_ns(usage.ru_stime);
}

/* The user-mode part of process_cpu_ns. */
static uint64_t process_user_ns(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return timeval_ns(usage.ru_utime);
}

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

/* Echoes frames until the peer closes, then reports how many and the thread's CPU time, so the
   benchmark can charge the server's share of each call. */
static void *echo_connection(void *arg) {
    int fd = (int)(intptr_t)arg;
    char *buf = NULL;
    size_t cap = 0;
    long len, frames = 0;
    while ((len = read_frame(fd, &buf, &cap, 0)) >= 0) {
        if (write_frame(fd, buf, (size_t)len) < 0) break;
        frames++;
    }
    free(buf);
    close(fd);
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    pthread_mutex_lock(&report_lock);
    printf("served %ld cpu_ns %llu user_ns %llu\n", frames, (unsigned long long)timespec_ns(cpu),
           (unsigned long long)timeval_ns(usage.ru_utime));
    fflush(stdout);
    pthread_mutex_unlock(&report_lock);
    return NULL;
}

static void *accept_loop(void *arg) {
    int listener = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            die("accept");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t thread;
        pthread_create(&thread, NULL, echo_connection, (void *)(intptr_t)fd);
        pthread_detach(thread);
    }
    return NULL;
}

static void limit_wait_for_answers(int fd) {
    struct timeval limit = {.tv_sec = answer_timeout_seconds};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0) die("SO_RCVTIMEO");
}

static int tcp_socket(const char *host, int port, int listening) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    int one = 1;
    if (listening) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) die("bind tcp");
        if (listen(fd, 128) < 0) die("listen tcp");
    } else {
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) die("connect tcp");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        limit_wait_for_answers(fd);
    }
    return fd;
}

static int unix_socket(const char *path, int listening) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
    if (listening) {
        unlink(path);
        if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) die("bind unix");
        if (listen(fd, 128) < 0) die("listen unix");
    } else {
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) die("connect unix");
        limit_wait_for_answers(fd);
    }
    return fd;
}

/* A client speaking OMX's protocol (NULL: raw frames): its signer on TCP, its connection's
   ends as signatures name them, the answer being read. */
struct protocol_client {
    struct omx_signer *signer;
    char local[32], peer[32];
    struct omx_opened opened;
    uint8_t *frame;
    size_t capacity;
};

/* One Bench.Echo call of `body` through OMX's protocol: the request signed, the answer's
   signature, call id and status checked. */
static void protocol_call(int fd, struct protocol_client *client, uint64_t call_id, const char *body, size_t length, char **buf, size_t *cap) {
    size_t size = omx_pack(client->signer, client->peer, call_id, OMX__ENVELOPE_KIND__REQUEST, "Bench.Echo", OMX__STATUS_CODE__OK,
                           (const uint8_t *)body, length, client->frame, client->capacity);
    if (size == 0 || write_full(fd, client->frame, size) < 0) die("pingpong-omx write");
    long answer = read_frame(fd, buf, cap, 0);
    if (answer < 0) die("pingpong-omx read");
    const char *error = NULL;
    Omx__Envelope *envelope = omx_open(&client->opened, client->signer, client->local, (const uint8_t *)*buf, (size_t)answer, &error);
    if (!envelope || envelope->call_id != call_id || envelope->status != OMX__STATUS_CODE__OK || envelope->body.len != length) {
        fprintf(stderr, "omx-rawbench: call %llu: %s\n", (unsigned long long)call_id,
                envelope ? (envelope->error[0] ? envelope->error : "unexpected answer") : error);
        exit(1);
    }
}

/* `count` calls one after the other (after a tenth as many to warm up): blocking reads and
   writes, or from a bare libuv loop (`on_uv`, uv_pingpong.c); raw frames, or OMX envelopes
   with `client`; blocking reads polling for each answer for `poll_ns` first. Prints each round
   trip and the client's CPU time per call. */
static void pingpong(int fd, int tcp, int on_uv, size_t body, long count, struct protocol_client *client, uint64_t poll_ns) {
    uint64_t *samples = calloc((size_t)count, sizeof(uint64_t));
    uint64_t cpu_start = process_cpu_ns(), user_start = process_user_ns();
    if (on_uv) {
        static struct uv_pingpong_protocol protocol;
        if (client) {
            protocol.signer = client->signer;
            protocol.local = client->local;
            protocol.peer = client->peer;
        }
        if (uv_pingpong(fd, tcp, client ? &protocol : NULL, body, count, samples) < 0) exit(1);
    } else {
        char *payload = calloc(1, body ? body : 1), *buf = NULL;
        size_t cap = 0;
        if (client) {
            client->capacity = body + 512;
            client->frame = malloc(client->capacity);
        }
        for (long i = -count / 10; i < count; i++) {
            uint64_t start = now_ns();
            if (client) {
                protocol_call(fd, client, (uint64_t)(i + count), payload, body, &buf, &cap);
            } else if (write_frame(fd, payload, body) < 0 || read_frame(fd, &buf, &cap, poll_ns ? now_ns() + poll_ns : 0) < 0) {
                die("pingpong");
            }
            if (i >= 0) samples[i] = now_ns() - start;
        }
    }
    double calls = (double)(count + count / 10);
    double cpu_per_call = (double)(process_cpu_ns() - cpu_start) / calls, user_per_call = (double)(process_user_ns() - user_start) / calls;
    for (long i = 0; i < count; i++) printf("%.2f\n", samples[i] / 1000.0);
    printf("cpu %.0f %.0f\n", cpu_per_call, user_per_call);
}

struct pipeline_state {
    int fd;
    size_t body;
    sem_t window;
    volatile int stop;
    long received;
};

static void *pipeline_reader(void *arg) {
    struct pipeline_state *s = arg;
    char *buf = NULL;
    size_t cap = 0;
    while (read_frame(s->fd, &buf, &cap, 0) >= 0) {
        s->received++;
        sem_post(&s->window);
    }
    if (!s->stop) die("pipeline read");
    return NULL;
}

static void pipeline(int fd, size_t body, double seconds, int window) {
    struct pipeline_state s = {.fd = fd, .body = body};
    sem_init(&s.window, 0, (unsigned)window);
    pthread_t reader;
    pthread_create(&reader, NULL, pipeline_reader, &s);
    char *payload = calloc(1, body ? body : 1);
    uint64_t cpu_start = process_cpu_ns(), user_start = process_user_ns();
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
    long sent = 0;
    while (now_ns() < end) {
        sem_wait(&s.window);
        if (write_frame(fd, payload, body) < 0) die("pipeline write");
        sent++;
    }
    while (s.received < sent) sem_wait(&s.window);
    double elapsed = (now_ns() - start) / 1e9;
    s.stop = 1;
    shutdown(fd, SHUT_RDWR);
    pthread_join(reader, NULL);
    printf("%ld %.6f\ncpu %.0f %.0f\n", sent, elapsed, (double)(process_cpu_ns() - cpu_start) / (double)sent,
           (double)(process_user_ns() - user_start) / (double)sent);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "serve") == 0) {
        pthread_t tcp_thread, unix_thread;
        pthread_create(&tcp_thread, NULL, accept_loop, (void *)(intptr_t)tcp_socket(argv[2], atoi(argv[3]), 1));
        pthread_create(&unix_thread, NULL, accept_loop, (void *)(intptr_t)unix_socket(argv[4], 1));
        printf("ready\n");
        fflush(stdout);
        pthread_join(tcp_thread, NULL);
        return 0;
    }
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "serve-uv") == 0) return serve_uv_echo(argv[2], atoi(argv[3]), argv[4], argc == 6 ? argv[5] : NULL);
    int on_uv = argc > 1 && strncmp(argv[1], "pingpong-uv", 11) == 0;
    if (argc >= 6 && (strcmp(argv[1], "pingpong-omx") == 0 || strcmp(argv[1], "pingpong-uv-omx") == 0)) {
        int tcp = strcmp(argv[2], "tcp") == 0;
        int next = tcp ? 6 : 4;
        if (argc == next + 2) {
            static struct protocol_client client;
            static struct omx_signer signer;
            int fd = tcp ? tcp_socket(argv[3], atoi(argv[4]), 0) : unix_socket(argv[3], 0);
            if (tcp) {
                if (omx_signer_load(&signer, argv[5], 0) < 0) return 1;
                client.signer = &signer;
                if (omx_socket_end(fd, 1, client.local, sizeof(client.local)) < 0 || omx_socket_end(fd, 0, client.peer, sizeof(client.peer)) < 0) die("socket ends");
            }
            pingpong(fd, tcp, on_uv, (size_t)atol(argv[next]), atol(argv[next + 1]), &client, 0);
            return 0;
        }
    }
    int raw_pingpong = argc > 1 && (strcmp(argv[1], "pingpong") == 0 || strcmp(argv[1], "pingpong-uv") == 0);
    if (argc >= 6 && (raw_pingpong || strcmp(argv[1], "pipeline") == 0)) {
        int tcp = strcmp(argv[2], "tcp") == 0;
        int next = tcp ? 5 : 4;
        int fd = tcp ? tcp_socket(argv[3], atoi(argv[4]), 0) : unix_socket(argv[3], 0);
        int polling = !on_uv && argc == next + 3;
        if (raw_pingpong && (argc == next + 2 || polling)) {
            uint64_t poll_ns = 0;
            if (polling) {
                /* At most 10 s: a read polling for its answer has no receive timeout. */
                char *end = NULL;
                errno = 0;
                unsigned long poll_us = strtoul(argv[next + 2], &end, 10);
                if (errno != 0 || end == argv[next + 2] || *end != '\0' || argv[next + 2][0] == '-' || poll_us > 10000000ul) {
                    fprintf(stderr, "omx-rawbench: POLL_US \"%s\": expected microseconds from 0 to 10000000\n", argv[next + 2]);
                    return 2;
                }
                poll_ns = (uint64_t)poll_us * 1000;
            }
            pingpong(fd, tcp, on_uv, (size_t)atol(argv[next]), atol(argv[next + 1]), NULL, poll_ns);
            return 0;
        }
        if (strcmp(argv[1], "pipeline") == 0 && argc == next + 3) {
            pipeline(fd, (size_t)atol(argv[next]), atof(argv[next + 1]), atoi(argv[next + 2]));
            return 0;
        }
    }
    fprintf(stderr, "usage: omx-rawbench serve TCP_HOST TCP_PORT UNIX_PATH\n"
                    "       omx-rawbench serve-uv TCP_HOST TCP_PORT UNIX_PATH [KEY_FILE]\n"
                    "       omx-rawbench pingpong tcp HOST PORT|unix PATH BODY_BYTES COUNT [POLL_US]\n"
                    "       omx-rawbench pingpong-uv tcp HOST PORT|unix PATH BODY_BYTES COUNT\n"
                    "       omx-rawbench pingpong[-uv]-omx tcp HOST PORT KEY_FILE|unix PATH BODY_BYTES COUNT\n"
                    "       omx-rawbench pipeline tcp HOST PORT|unix PATH BODY_BYTES SECONDS WINDOW\n");
    return 2;
}
