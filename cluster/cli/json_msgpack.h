/* JSON <-> msgpack for the CLI (jansson from Debian's libjansson-dev). */
#ifndef XO_CLUSTER_CLI_JSON_MSGPACK_H
#define XO_CLUSTER_CLI_JSON_MSGPACK_H

#include <msgpack.h>
#include <stdio.h>

#include "xoscar/xoscar.h"

/* Parses text (a JSON array) into call arguments. On XO_OK *args_p is owned by the caller. XO_EINVAL with the
 * parser's line/column, or "expected a JSON array". */
xo_status_t xo_cli_json_to_args(const char *text, xo_args_t **args_p);

/* Writes o as JSON to out. Binary becomes {"$bin": <length>} (its bytes are not printed); non-string map keys
 * are printed as strings of their JSON. */
void xo_cli_print_json(FILE *out, const msgpack_object *o);

#endif
