#ifndef COPENSSL_H
#define COPENSSL_H

/* The only door from Swift to OpenSSL's libcrypto: HMAC, digests, randomness. */
#include <stddef.h>
#include <stdint.h>

/* HMAC-SHA256 of data under key, written to out (32 bytes). Returns 1 on success, 0 on failure. */
int COpenSSL_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len, uint8_t *out);

/* SHA-256 of data, written to out (32 bytes). Returns 1 on success, 0 on failure. */
int COpenSSL_sha256(const uint8_t *data, size_t data_len, uint8_t *out);

/* Fills buf with cryptographically strong random bytes. Returns 1 on success, 0 on failure. */
int COpenSSL_random_bytes(uint8_t *buf, size_t len);

/* Compares two buffers in time that does not depend on their contents; 0 when equal. */
int COpenSSL_constant_time_compare(const uint8_t *a, const uint8_t *b, size_t len);

#endif
