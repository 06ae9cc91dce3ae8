/*
 * OMX's wire protocol in C, from proto/README.md ("Framing", "Calls", "Authentication"): what
 * the protocol itself costs per call, measured by `omx bench rpc` as its protocol floor.
 */
#include "omx_protocol.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static const uint64_t skew_ms = 30000;
static const uint64_t window = 1024;

static uint64_t wall_clock_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int omx_signer_load(struct omx_signer *signer, const char *key_path, uint32_t node_id) {
    memset(signer, 0, sizeof(*signer));
    char text[80] = {0};
    FILE *file = fopen(key_path, "r");
    if (!file) {
        perror(key_path);
        return -1;
    }
    size_t count = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    while (count > 0 && (text[count - 1] == '\n' || text[count - 1] == ' ')) count--;
    uint8_t key[32];
    for (size_t i = 0; i < sizeof(key); i++) {
        int high = count == 64 ? hex_digit(text[2 * i]) : -1, low = count == 64 ? hex_digit(text[2 * i + 1]) : -1;
        if (high < 0 || low < 0) {
            fprintf(stderr, "%s:1: a cluster key is 64 hex digits\n", key_path);
            return -1;
        }
        key[i] = (uint8_t)(high << 4 | low);
    }
    if (COpenSSL_hmac_prepare(&signer->key, key, sizeof(key)) != 1 || COpenSSL_random_bytes((uint8_t *)&signer->epoch, 8) != 1) {
        fprintf(stderr, "omx-rawbench: libcrypto failed to set up the key\n");
        return -1;
    }
    signer->node_id = node_id;
    return 0;
}

int omx_socket_end(int fd, int local, char *out, size_t capacity) {
    struct sockaddr_in address;
    socklen_t size = sizeof(address);
    int status = local ? getsockname(fd, (struct sockaddr *)&address, &size) : getpeername(fd, (struct sockaddr *)&address, &size);
    if (status < 0 || address.sin_family != AF_INET) return -1;
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &address.sin_addr, host, sizeof(host));
    snprintf(out, capacity, "%s:%u", host, ntohs(address.sin_port));
    return 0;
}

/* Appends big-endian integers and length-prefixed fields to a buffer sized for them. */
static uint8_t *put32(uint8_t *at, uint32_t value) {
    value = htonl(value);
    memcpy(at, &value, 4);
    return at + 4;
}

static uint8_t *put64(uint8_t *at, uint64_t value) {
    return put32(put32(at, (uint32_t)(value >> 32)), (uint32_t)value);
}

static uint8_t *put_field(uint8_t *at, const void *bytes, size_t length) {
    at = put32(at, (uint32_t)length);
    if (length) memcpy(at, bytes, length);
    return at + length;
}

/* The MAC of an envelope's signing string for `receiver` (proto/README.md): the head written
   on the stack, the body where it lies. */
static void mac(const COpenSSL_hmac_key *key, const char *receiver, const Omx__Envelope *envelope, const Omx__Auth *auth, uint8_t out[32]) {
    size_t method = strlen(envelope->method), error = strlen(envelope->error), to = strlen(receiver);
    uint8_t head[512];
    if (56 + to + method + error + auth->nonce.len > sizeof(head)) {
        memset(out, 0, 32); /* no such envelope in the benchmark: it fails the check */
        return;
    }
    uint8_t *at = put32(head, 0x4F4D5832); /* "OMX2" */
    at = put_field(at, receiver, to);
    at = put64(at, envelope->call_id);
    at = put32(at, (uint32_t)envelope->kind);
    at = put_field(at, envelope->method, method);
    at = put32(at, (uint32_t)envelope->status);
    at = put_field(at, envelope->error, error);
    at = put32(at, envelope->deadline_ms);
    at = put32(at, auth->node_id);
    at = put64(at, auth->timestamp_ms);
    at = put_field(at, auth->nonce.data, auth->nonce.len);
    at = put32(at, (uint32_t)envelope->body.len);
    COpenSSL_hmac_sha256_prepared(key, head, (size_t)(at - head), envelope->body.data, envelope->body.len, out);
}

size_t omx_pack(struct omx_signer *signer, const char *receiver, uint64_t call_id, Omx__EnvelopeKind kind, const char *method,
                Omx__StatusCode status, const uint8_t *body, size_t body_len, uint8_t *out, size_t capacity) {
    Omx__Envelope envelope = OMX__ENVELOPE__INIT;
    envelope.call_id = call_id;
    envelope.kind = kind;
    envelope.method = (char *)method;
    envelope.status = status;
    envelope.body.data = (uint8_t *)body;
    envelope.body.len = body_len;
    Omx__Auth auth = OMX__AUTH__INIT;
    uint8_t nonce[16], signature[32];
    if (signer) {
        put64(put64(nonce, signer->epoch), ++signer->counter);
        auth.node_id = signer->node_id;
        auth.timestamp_ms = wall_clock_ms();
        auth.nonce.data = nonce;
        auth.nonce.len = sizeof(nonce);
        mac(&signer->key, receiver, &envelope, &auth, signature);
        auth.mac.data = signature;
        auth.mac.len = sizeof(signature);
        envelope.auth = &auth;
    }
    size_t size = omx__envelope__get_packed_size(&envelope);
    if (4 + size > capacity) return 0;
    put32(out, (uint32_t)size);
    return 4 + omx__envelope__pack(&envelope, out + 4);
}

/* Bump allocation in the scratch area, malloc beyond it (as the Swift runtime's decoder). */
static void *scratch_alloc(void *data, size_t size) {
    struct omx_opened *opened = data;
    size_t start = (opened->used + 15) & ~(size_t)15;
    if (start + size > sizeof(opened->scratch)) return malloc(size ? size : 1);
    opened->used = start + size;
    return opened->scratch + start;
}

static void scratch_free(void *data, void *pointer) {
    struct omx_opened *opened = data;
    if ((uint8_t *)pointer < opened->scratch || (uint8_t *)pointer >= opened->scratch + sizeof(opened->scratch)) free(pointer);
}

/* Admits a nonce of the one peer epoch this side follows; 0 when fresh. */
static int admit(struct omx_signer *signer, const uint8_t nonce[16]) {
    uint64_t epoch = 0, counter = 0;
    for (int i = 0; i < 8; i++) {
        epoch = epoch << 8 | nonce[i];
        counter = counter << 8 | nonce[8 + i];
    }
    if (!signer->have_peer || epoch != signer->peer_epoch) {
        signer->have_peer = 1;
        signer->peer_epoch = epoch;
        signer->highest = counter;
        memset(signer->seen, 0, sizeof(signer->seen));
        signer->seen[0] = 1;
        return 0;
    }
    if (counter > signer->highest) {
        uint64_t distance = counter - signer->highest;
        if (distance >= window) {
            memset(signer->seen, 0, sizeof(signer->seen));
        } else {
            size_t words = (size_t)(distance / 64), offset = (size_t)(distance % 64);
            for (size_t i = 16; i-- > 0;) {
                uint64_t value = i >= words ? signer->seen[i - words] << offset : 0;
                if (offset && i >= words + 1) value |= signer->seen[i - words - 1] >> (64 - offset);
                signer->seen[i] = value;
            }
        }
        signer->highest = counter;
        signer->seen[0] |= 1;
        return 0;
    }
    uint64_t behind = signer->highest - counter;
    if (behind >= window) return -1;
    uint64_t bit = 1ull << (behind % 64);
    if (signer->seen[behind / 64] & bit) return -1;
    signer->seen[behind / 64] |= bit;
    return 0;
}

Omx__Envelope *omx_open(struct omx_opened *opened, struct omx_signer *signer, const char *receiver, const uint8_t *payload,
                        size_t length, const char **error) {
    if (opened->envelope) omx__envelope__free_unpacked(opened->envelope, &opened->allocator);
    opened->used = 0;
    opened->allocator = (ProtobufCAllocator){.alloc = scratch_alloc, .free = scratch_free, .allocator_data = opened};
    Omx__Envelope *envelope = opened->envelope = omx__envelope__unpack(&opened->allocator, length, payload);
    if (!envelope) {
        *error = "malformed omx.Envelope";
        return NULL;
    }
    if (!signer || (envelope->kind == OMX__ENVELOPE_KIND__RESPONSE && envelope->status != OMX__STATUS_CODE__OK)) return envelope;
    const Omx__Auth *auth = envelope->auth;
    if (!auth) {
        *error = "envelope carries no authentication";
        return NULL;
    }
    uint8_t expected[32];
    mac(&signer->key, receiver, envelope, auth, expected);
    if (auth->scheme != OMX__AUTH_SCHEME__CLUSTER_HMAC_SHA256 || auth->mac.len != 32 ||
        COpenSSL_constant_time_compare(auth->mac.data, expected, 32) != 0) {
        *error = "bad MAC";
        return NULL;
    }
    uint64_t now = wall_clock_ms();
    if (auth->timestamp_ms > now + skew_ms || auth->timestamp_ms + skew_ms < now) {
        *error = "timestamp more than 30 s away";
        return NULL;
    }
    if (auth->nonce.len != 16 || admit(signer, auth->nonce.data) != 0) {
        *error = "replayed or malformed nonce";
        return NULL;
    }
    return envelope;
}
