/* Authentication of connections between pools: a challenge-response on the cluster secret, before any message.
 *
 *   acceptor  → [version, AUTH_CHALLENGE, 0, nonce (32 random bytes)]
 *   connector → [version, AUTH_RESPONSE, 0, HMAC-SHA256(secret, "xoscar-auth-v1" || nonce)]
 *   acceptor  → [version, AUTH_OK, 0, HMAC-SHA256(secret, "xoscar-auth-ok-v1" || nonce)]   (or it hangs up)
 *
 * The acceptor reads nothing else from a connection until the response checks out (a stranger is disconnected
 * before any message is decoded); the OK proves to the connector that the acceptor knows the secret too. The secret
 * is process-wide: xo_set_secret, or the XO_SECRET environment variable; empty by default (then every process of
 * the same build authenticates, and strangers speaking the protocol still must know it is empty). HMAC from
 * OpenSSL's libcrypto; comparisons in constant time. */
#ifndef XO_RUNTIME_AUTH_H
#define XO_RUNTIME_AUTH_H

#include <stdbool.h>

#include "transport/channel.h"
#include "xoscar/status.h"

#define XO_AUTH_TIMEOUT_MS 3000

/* A copy of this process's secret (the caller frees it): a host hands it to its sub pools in their environment
 * (XO_SECRET; /proc/<pid>/environ is readable by its owner only), never on their command line. */
char *xo__auth_secret_dup(void);

/* Acceptor side, step 1: sends the challenge on ch and keeps the nonce in nonce[32]. */
xo_status_t xo__auth_challenge(xo_channel_t *ch, unsigned char nonce[32]);

/* Acceptor side, step 2: checks the frame as the response to nonce; on XO_OK sends the OK. XO_EAUTH otherwise
 * (the caller hangs up). Does not release the frame. */
xo_status_t xo__auth_check(xo_channel_t *ch, const xo_frame_t *frame, const unsigned char nonce[32]);

/* Connector side: answers the challenge and waits for the OK, up to XO_AUTH_TIMEOUT_MS in all. XO_EAUTH when the
 * peer hangs up or proves a different secret; XO_ETIMEDOUT; XO_EPROTO. */
xo_status_t xo__auth_connect(xo_channel_t *ch);

#endif
