/* OpenSSL 3 deprecates the low-level SHA256_* calls, but they are the only way to keep a
   prepared HMAC state without allocating per message (EVP_MAC_CTX_dup allocates). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "COpenSSL.h"
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

_Static_assert(sizeof(SHA256_CTX) <= 128, "COpenSSL_hmac_key holds a SHA256_CTX in 128 bytes");

int COpenSSL_hmac_prepare(COpenSSL_hmac_key *prepared, const uint8_t *key, size_t key_len) {
    uint8_t block[64] = {0}, pad[64];
    if (key_len > sizeof(block)) {
        if (SHA256(key, key_len, block) == NULL) return 0;
    } else {
        memcpy(block, key, key_len);
    }
    SHA256_CTX inner, outer;
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    if (!SHA256_Init(&inner) || !SHA256_Update(&inner, pad, 64)) return 0;
    for (int i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    if (!SHA256_Init(&outer) || !SHA256_Update(&outer, pad, 64)) return 0;
    memcpy(prepared->inner, &inner, sizeof(inner));
    memcpy(prepared->outer, &outer, sizeof(outer));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    return 1;
}

int COpenSSL_hmac_sha256_prepared(const COpenSSL_hmac_key *prepared, const uint8_t *head, size_t head_len,
                                  const uint8_t *tail, size_t tail_len, uint8_t *out) {
    SHA256_CTX ctx;
    uint8_t inner_hash[32];
    memcpy(&ctx, prepared->inner, sizeof(ctx));
    if (!SHA256_Update(&ctx, head, head_len) || (tail_len > 0 && !SHA256_Update(&ctx, tail, tail_len)) || !SHA256_Final(inner_hash, &ctx)) return 0;
    memcpy(&ctx, prepared->outer, sizeof(ctx));
    return SHA256_Update(&ctx, inner_hash, sizeof(inner_hash)) && SHA256_Final(out, &ctx);
}

int COpenSSL_sha256(const uint8_t *data, size_t data_len, uint8_t *out) {
    return SHA256(data, data_len, out) != NULL;
}

int COpenSSL_random_bytes(uint8_t *buf, size_t len) {
    return RAND_bytes(buf, (int)len);
}

int COpenSSL_constant_time_compare(const uint8_t *a, const uint8_t *b, size_t len) {
    return CRYPTO_memcmp(a, b, len);
}
