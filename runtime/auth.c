#include "runtime/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "runtime/wire.h"
#include "xoscar/xoscar.h"

enum { AUTH_CHALLENGE = 30, AUTH_RESPONSE = 31, AUTH_OK = 32 };

static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static char *secret;
static bool secret_set;

void xo_set_secret(const char *s)
{
    pthread_mutex_lock(&secret_lock);
    free(secret);
    secret = strdup(s ? s : "");
    secret_set = true;
    pthread_mutex_unlock(&secret_lock);
}

char *xo__auth_secret_dup(void)
{
    pthread_mutex_lock(&secret_lock);
    if (!secret_set) {
        const char *env = getenv("XO_SECRET");
        secret = strdup(env ? env : "");
        secret_set = true;
    }
    char *copy = strdup(secret ? secret : "");
    pthread_mutex_unlock(&secret_lock);
    return copy;
}

static void mac(const char *label, const unsigned char nonce[32], unsigned char out[32])
{
    pthread_mutex_lock(&secret_lock);
    if (!secret_set) {
        const char *env = getenv("XO_SECRET");
        secret = strdup(env ? env : "");
        secret_set = true;
    }
    unsigned char msg[64 + 32];
    size_t ll = strlen(label);
    memcpy(msg, label, ll);
    memcpy(msg + ll, nonce, 32);
    unsigned int len = 32;
    HMAC(EVP_sha256(), secret ? secret : "", secret ? (int)strlen(secret) : 0, msg, ll + 32, out, &len);
    pthread_mutex_unlock(&secret_lock);
}

static xo_status_t send_auth(xo_channel_t *ch, int type, const unsigned char bytes[32])
{
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    msgpack_pack_array(&w.pk, 4);
    msgpack_pack_int(&w.pk, XO_WIRE_VERSION);
    msgpack_pack_int(&w.pk, type);
    msgpack_pack_int(&w.pk, 0);
    msgpack_pack_bin_with_body(&w.pk, bytes, 32);
    xo_frame_t f = xo__wire_frame(&w);
    xo_status_t st = xo__channel_send(ch, &f);
    xo__wire_out_free(&w);
    return st;
}

/* Reads [version, type, 0, bin(32)] from a frame header without a zone (the header is tiny and fixed). */
static bool parse_auth(const xo_frame_t *f, int type, unsigned char out[32])
{
    const unsigned char *p = f->header;
    size_t n = f->header_len;
    /* 0x94, version, type, 0, 0xc4 0x20 <32 bytes>: version and type fit positive fixints */
    if (n != 1 + 1 + 1 + 1 + 2 + 32 || f->nsegs) return false;
    if (p[0] != 0x94 || p[1] != XO_WIRE_VERSION || p[2] != type || p[3] != 0 || p[4] != 0xc4 || p[5] != 32)
        return false;
    memcpy(out, p + 6, 32);
    return true;
}

xo_status_t xo__auth_challenge(xo_channel_t *ch, unsigned char nonce[32])
{
    if (RAND_bytes(nonce, 32) != 1) return xo__error_set(XO_ESYS, "no randomness for an authentication challenge");
    return send_auth(ch, AUTH_CHALLENGE, nonce);
}

xo_status_t xo__auth_check(xo_channel_t *ch, const xo_frame_t *frame, const unsigned char nonce[32])
{
    unsigned char got[32], want[32];
    if (!parse_auth(frame, AUTH_RESPONSE, got))
        return xo__error_set(XO_EAUTH, "the first message was not an authentication response");
    mac("xoscar-auth-v1", nonce, want);
    if (CRYPTO_memcmp(got, want, 32) != 0) return xo__error_set(XO_EAUTH, "wrong cluster secret");
    mac("xoscar-auth-ok-v1", nonce, want);
    return send_auth(ch, AUTH_OK, want);
}

static xo_status_t recv_auth(xo_channel_t *ch, int type, unsigned char out[32], const char *what)
{
    xo_frame_t f = {0};
    xo_status_t st = xo__channel_recv(ch, XO_AUTH_TIMEOUT_MS, &f);
    /* A hang-up before the challenge is a pool going away (or not a pool), not a refusal of our secret. */
    if (st == XO_ECLOSED && type == AUTH_CHALLENGE)
        return xo__error_set(XO_ECLOSED, "the connection closed before authentication began");
    if (st == XO_ECLOSED) return xo__error_set(XO_EAUTH, "the pool hung up during authentication (%s)", what);
    if (st != XO_OK) return st;
    bool ok = parse_auth(&f, type, out);
    xo__frame_release(&f);
    return ok ? XO_OK : xo__error_set(XO_EPROTO, "expected an authentication %s", what);
}

xo_status_t xo__auth_connect(xo_channel_t *ch)
{
    unsigned char nonce[32], resp[32], ok[32], want[32];
    xo_status_t st = recv_auth(ch, AUTH_CHALLENGE, nonce, "challenge");
    if (st != XO_OK) return st;
    mac("xoscar-auth-v1", nonce, resp);
    st = send_auth(ch, AUTH_RESPONSE, resp);
    if (st != XO_OK) return st;
    st = recv_auth(ch, AUTH_OK, ok, "confirmation (wrong cluster secret?)");
    if (st != XO_OK) return st;
    mac("xoscar-auth-ok-v1", nonce, want);
    if (CRYPTO_memcmp(ok, want, 32) != 0)
        return xo__error_set(XO_EAUTH, "the pool proved a different cluster secret");
    return XO_OK;
}
