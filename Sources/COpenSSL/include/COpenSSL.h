#ifndef COPENSSL_H
#define COPENSSL_H

/* The only door from Swift to OpenSSL's libcrypto: MACs, digests, randomness. */
#include <stddef.h>
#include <stdint.h>

/* A key prepared for HMAC-SHA256: the hash states after absorbing key^ipad and key^opad, so
   each message costs two SHA-256 runs over the message and one block, with no allocation. */
typedef struct COpenSSL_hmac_key {
    uint8_t inner[128];
    uint8_t outer[128];
} COpenSSL_hmac_key;

/* Prepares key for COpenSSL_hmac_sha256_prepared. Returns 1 on success, 0 on failure. */
int COpenSSL_hmac_prepare(COpenSSL_hmac_key *prepared, const uint8_t *key, size_t key_len);

/* HMAC-SHA256 of head followed by tail (without joining them) under a prepared key, written
   to out (32 bytes). Returns 1 on success. */
int COpenSSL_hmac_sha256_prepared(const COpenSSL_hmac_key *prepared, const uint8_t *head, size_t head_len,
                                  const uint8_t *tail, size_t tail_len, uint8_t *out);

/* The 16-byte tag ChaCha20-Poly1305 (RFC 8439) gives an empty plaintext with head followed by
   tail as its additional data, under a 32-byte key and a 12-byte nonce: a MAC of head and tail.
   Written to out (16 bytes). Returns 1 on success, 0 on failure. */
int COpenSSL_chacha20_poly1305_tag(const uint8_t *key, const uint8_t *nonce, const uint8_t *head, size_t head_len,
                                   const uint8_t *tail, size_t tail_len, uint8_t *out);

/* SHA-256 of data, written to out (32 bytes). Returns 1 on success, 0 on failure. */
int COpenSSL_sha256(const uint8_t *data, size_t data_len, uint8_t *out);

/* Fills buf with cryptographically strong random bytes. Returns 1 on success, 0 on failure. */
int COpenSSL_random_bytes(uint8_t *buf, size_t len);

/* Compares two buffers in time that does not depend on their contents; 0 when equal. */
int COpenSSL_constant_time_compare(const uint8_t *a, const uint8_t *b, size_t len);

#endif
