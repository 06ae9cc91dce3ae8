/* OpenSSL 3 deprecates the low-level SHA256_* calls, but they are the only way to keep a
   prepared HMAC state without allocating per message (EVP_MAC_CTX_dup allocates). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "COpenSSL.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <limits.h>
#include <pthread.h>
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

/* One cipher context per thread, made on its first tag and freed when the thread ends. */
static pthread_key_t cipher_context_key;
static pthread_once_t cipher_context_once = PTHREAD_ONCE_INIT;

static void free_cipher_context(void *context) { EVP_CIPHER_CTX_free(context); }
static void make_cipher_context_key(void) { pthread_key_create(&cipher_context_key, free_cipher_context); }

static EVP_CIPHER_CTX *thread_cipher_context(void) {
    pthread_once(&cipher_context_once, make_cipher_context_key);
    EVP_CIPHER_CTX *context = pthread_getspecific(cipher_context_key);
    if (context == NULL) {
        context = EVP_CIPHER_CTX_new();
        if (context == NULL || EVP_EncryptInit_ex(context, EVP_chacha20_poly1305(), NULL, NULL, NULL) != 1) {
            EVP_CIPHER_CTX_free(context);
            return NULL;
        }
        pthread_setspecific(cipher_context_key, context);
    }
    return context;
}

int COpenSSL_chacha20_poly1305_tag(const uint8_t *key, const uint8_t *nonce, const uint8_t *head, size_t head_len,
                                   const uint8_t *tail, size_t tail_len, uint8_t *out) {
    EVP_CIPHER_CTX *context = thread_cipher_context();
    int length = 0;
    if (context == NULL || EVP_EncryptInit_ex(context, NULL, NULL, key, nonce) != 1) return 0;
    if (head_len > INT_MAX || tail_len > INT_MAX) return 0;
    if (head_len > 0 && EVP_EncryptUpdate(context, NULL, &length, head, (int)head_len) != 1) return 0;
    if (tail_len > 0 && EVP_EncryptUpdate(context, NULL, &length, tail, (int)tail_len) != 1) return 0;
    if (EVP_EncryptFinal_ex(context, out, &length) != 1) return 0;
    return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, out) == 1;
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
