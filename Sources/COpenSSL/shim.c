#include "COpenSSL.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

int COpenSSL_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t data_len, uint8_t *out) {
    unsigned int out_len = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &out_len) != NULL && out_len == 32;
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
