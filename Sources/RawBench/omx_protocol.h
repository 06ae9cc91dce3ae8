#ifndef OMX_RAWBENCH_PROTOCOL_H
#define OMX_RAWBENCH_PROTOCOL_H

/* OMX's wire protocol written in C from proto/README.md alone, for the protocol floor of
   `omx bench rpc`: the same envelopes, HMAC-SHA256 signatures, clock and nonce checks as the
   Swift runtime, with no Swift, task or allocation per call. */
#include <stddef.h>
#include <stdint.h>

#include "COpenSSL.h"
#include "common.pb-c.h"

/* One side's signing state: the cluster key, its own nonces, and the replay window of one
   peer epoch (a benchmark connection has one peer). */
struct omx_signer {
    COpenSSL_hmac_key key;
    uint32_t node_id;
    uint64_t epoch, counter;
    int have_peer;
    uint64_t peer_epoch, highest;
    uint64_t seen[16]; /* bit k: counter highest - k was seen (1,024 counters) */
};

/* A parsed envelope, living in `scratch` until the next omx_open on it. */
struct omx_opened {
    Omx__Envelope *envelope;
    ProtobufCAllocator allocator;
    size_t used;
    uint8_t scratch[4096];
};

/* Reads the cluster key file (64 hex digits); returns 0, or -1 with a message on stderr. */
int omx_signer_load(struct omx_signer *signer, const char *key_path, uint32_t node_id);

/* "IPv4:port" of a socket's own end (local != 0) or its peer's, as signatures name them. */
int omx_socket_end(int fd, int local, char *out, size_t capacity);

/* Writes one frame (length prefix and envelope) to `out`, signed for `receiver` when `signer`
   is given; returns its size, or 0 when `capacity` is too small. */
size_t omx_pack(struct omx_signer *signer, const char *receiver, uint64_t call_id, Omx__EnvelopeKind kind, const char *method,
                Omx__StatusCode status, const uint8_t *body, size_t body_len, uint8_t *out, size_t capacity);

/* Parses one frame's payload and, when `signer` is given, checks its signature for `receiver`
   (MAC, clock within 30 s, nonce not seen; unsigned refusals pass). Returns the envelope, or
   NULL with *error saying why. */
Omx__Envelope *omx_open(struct omx_opened *opened, struct omx_signer *signer, const char *receiver, const uint8_t *payload,
                        size_t length, const char **error);

#endif
