/* xoscar: the command line.
 *
 *   xoscar call ADDRESS UID METHOD [JSON-ARGS]   call a method, print its result as JSON
 *   xoscar tell ADDRESS UID METHOD [JSON-ARGS]   send without waiting
 *   xoscar batch ADDRESS UID METHOD '[[ARGS]...]'  many calls of one extensible method as one message
 *   xoscar create ADDRESS CLASS [--uid UID] [JSON-ARGS]   create an actor (its class must be known there)
 *   xoscar destroy ADDRESS UID | has ADDRESS UID | info ADDRESS
 *
 * Exit codes: 0 done; 1 the actor or pool answered with an error; 2 bad usage; 3 the pool could not be reached or
 * died. Errors go to stderr as "xoscar: XO_NAME: text". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cli/commands.h"
#include "cluster/cli/json_msgpack.h"
#include "runtime/core.h"
#include "base/log.h"
#include "runtime/remote.h"
#include "xoscar/module.h"

int xo_cli_fail(xo_status_t st)
{
    fprintf(stderr, "xoscar: %s: %s\n", xo_status_name(st), xo_last_error()[0] ? xo_last_error() : xo_strerror(st));
    return (st == XO_EUNREACHABLE || st == XO_EPOOLDIED || st == XO_EREFUSED || st == XO_ECLOSED) ? 3 : 1;
}

static int usage(FILE *out, int code)
{
    fprintf(out,
            "usage: xoscar COMMAND ...\n"
            "  call ADDRESS UID METHOD [JSON-ARGS]       call a method; print the result as JSON\n"
            "  tell ADDRESS UID METHOD [JSON-ARGS]       send a call without waiting for it\n"
            "  batch ADDRESS UID METHOD '[[ARGS], ...]'  calls of one extensible method as one message\n"
            "  create ADDRESS CLASS [--uid UID] [JSON-ARGS]  create an actor; print its uid\n"
            "  destroy ADDRESS UID                       destroy an actor\n"
            "  has ADDRESS UID                           print true or false\n"
            "  info ADDRESS                              print the pool's pid and actor count\n"
            "%s"
            "JSON-ARGS is a JSON array: '[1, \"two\", {\"three\": 3}]'. ADDRESS is host:port or host:port/N.\n"
            "Options (before COMMAND): --log-level error|warn|info|debug   --timeout MS (default 30000)\n"
            "Exit codes: 0 done, 1 the call failed, 2 bad usage, 3 pool unreachable or dead.\n",
            xo_cli_cluster_usage());
    return code;
}

static int64_t timeout_ms = 30000;

static int print_result(xo_result_t *r)
{
    xo_cli_print_json(stdout, xo_result_value(r));
    fputc('\n', stdout);
    xo_result_free(r);
    return 0;
}

static int parse_args(int argc, char **argv, int i, xo_args_t **args)
{
    *args = NULL;
    if (i >= argc) return 0;
    xo_status_t st = xo_cli_json_to_args(argv[i], args);
    if (st != XO_OK) {
        fprintf(stderr, "xoscar: %s\n", xo_last_error());
        return 2;
    }
    return 0;
}

static int cmd_call(int argc, char **argv, bool tell)
{
    if (argc < 4 || argc > 5) return usage(stderr, 2);
    xo_args_t *args;
    int rc = parse_args(argc, argv, 4, &args);
    if (rc) return rc;
    xo_ref_t *ref;
    xo_status_t st = xo_actor_ref(argv[1], argv[2], &ref);
    if (st != XO_OK) {
        xo_args_free(args);
        return xo_cli_fail(st);
    }
    xo_result_t *r = NULL;
    st = tell ? xo_tell(ref, argv[3], args) : xo_call(ref, argv[3], args, timeout_ms, &r);
    xo_ref_free(ref);
    if (st != XO_OK) return xo_cli_fail(st);
    return tell ? 0 : print_result(r);
}

/* batch ADDRESS UID METHOD '[[args of call 1], [args of call 2], ...]': one message; prints one JSON value per call
 * ({"error": "XO_NAME: text"} for a call that failed alone). */
static int cmd_batch(int argc, char **argv)
{
    if (argc != 5) return usage(stderr, 2);
    xo_args_t *all;
    int rc = parse_args(argc, argv, 4, &all); /* a JSON array whose items are the calls' argument arrays */
    if (rc) return rc;
    size_t len;
    const char *data = xo__args_data(all, &len);
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object list;
    xo_status_t st = xo__decode(data, len, &z, &list);
    size_t n = st == XO_OK ? list.via.array.size : 0;
    xo_delayed_t **calls = calloc(n ? n : 1, sizeof *calls);
    xo_status_t *sts = calloc(n ? n : 1, sizeof *sts);
    xo_result_t **res = calloc(n ? n : 1, sizeof *res);
    char **errs = calloc(n ? n : 1, sizeof *errs);
    for (size_t i = 0; st == XO_OK && i < n; i++) {
        const msgpack_object *one = &list.via.array.ptr[i];
        if (one->type != MSGPACK_OBJECT_ARRAY) {
            st = xo__error_set(XO_EINVAL, "batch: call %zu's arguments must be a JSON array", i);
            break;
        }
        xo_args_t *a = xo_args_new(one->via.array.size);
        for (uint32_t k = 0; a && k < one->via.array.size; k++) msgpack_pack_object(xo_args_packer(a), one->via.array.ptr[k]);
        calls[i] = xo_delay(argv[3], a);
    }
    xo_ref_t *ref = NULL;
    if (st == XO_OK) st = xo_actor_ref(argv[1], argv[2], &ref);
    if (st == XO_OK) st = xo_batch(ref, calls, n, timeout_ms, sts, res, errs);
    else
        for (size_t i = 0; i < n; i++) xo_delayed_free(calls[i]);
    if (st == XO_OK) {
        fputc('[', stdout);
        for (size_t i = 0; i < n; i++) {
            if (i) fputs(", ", stdout);
            if (sts[i] == XO_OK) xo_cli_print_json(stdout, xo_result_value(res[i]));
            else printf("{\"error\": \"%s: %s\"}", xo_status_name(sts[i]), errs[i] ? errs[i] : "");
            xo_result_free(res[i]);
            free(errs[i]);
        }
        fputs("]\n", stdout);
    }
    xo_ref_free(ref);
    free(calls);
    free(sts);
    free(res);
    free(errs);
    msgpack_zone_destroy(&z);
    xo_args_free(all);
    return st == XO_OK ? 0 : xo_cli_fail(st);
}

static int cmd_create(int argc, char **argv)
{
    if (argc < 3) return usage(stderr, 2);
    const char *uid = NULL;
    int i = 3;
    if (i + 1 < argc && strcmp(argv[i], "--uid") == 0) {
        uid = argv[i + 1];
        i += 2;
    }
    if (i + 1 < argc) return usage(stderr, 2);
    xo_args_t *args;
    int rc = parse_args(argc, argv, i, &args);
    if (rc) return rc;
    xo_ref_t *ref;
    xo_status_t st = xo_create_actor_by_name(argv[2], args, argv[1], uid, &ref);
    if (st != XO_OK) return xo_cli_fail(st);
    printf("%s\n", xo_ref_uid(ref));
    xo_ref_free(ref);
    return 0;
}

static int cmd_uid(int argc, char **argv, const char *what)
{
    if (argc != 3) return usage(stderr, 2);
    xo_ref_t *ref;
    xo_status_t st = xo_actor_ref(argv[1], argv[2], &ref);
    if (strcmp(what, "has") == 0) {
        printf("%s\n", st == XO_OK && xo_has_actor(ref) ? "true" : "false");
        if (st == XO_OK) xo_ref_free(ref);
        return st == XO_OK || st == XO_ENOACTOR ? 0 : xo_cli_fail(st);
    }
    if (st != XO_OK) return xo_cli_fail(st);
    st = xo_destroy_actor(ref);
    xo_ref_free(ref);
    return st == XO_OK ? 0 : xo_cli_fail(st);
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 2) return usage(stderr, 2);
    int pid = 0;
    uint64_t actors = 0;
    xo_status_t st = xo_cli_pool_info(argv[1], timeout_ms, &pid, &actors);
    if (st != XO_OK) return xo_cli_fail(st);
    printf("{\"address\": \"%s\", \"pid\": %d, \"actors\": %llu}\n", argv[1], pid, (unsigned long long)actors);
    return 0;
}

xo_status_t xo_cli_pool_info(const char *address, int64_t timeout, int *pid, uint64_t *actors)
{
    xo_future_t *f = NULL;
    xo_status_t st = xo__remote_send(address, XO_WIRE_INFO, 0, "", NULL, NULL, true, &f);
    if (st != XO_OK) return st;
    xo_result_t *r = NULL;
    st = xo_future_wait(f, timeout, &r);
    if (st == XO_ETIMEDOUT) xo__future_request_cancel(f);
    xo__future_unref(f);
    if (st != XO_OK) return st;
    st = xo_result_unpack(r, "[iu*]", pid, actors);
    xo_result_free(r);
    return st;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--help") == 0) return usage(stdout, 0);
        if (i + 1 >= argc) return usage(stderr, 2);
        if (strcmp(argv[i], "--log-level") == 0) setenv("XO_LOG_LEVEL", argv[i + 1], 1);
        else if (strcmp(argv[i], "--timeout") == 0) timeout_ms = atoll(argv[i + 1]);
        else return usage(stderr, 2);
    }
    if (i >= argc) return usage(stderr, 2);
    const char *cmd = argv[i];
    argc -= i;
    argv += i;
    if (argc > 1 && strcmp(argv[1], "--help") == 0) return usage(stdout, 0);
    if (strcmp(cmd, "call") == 0) return cmd_call(argc, argv, false);
    if (strcmp(cmd, "tell") == 0) return cmd_call(argc, argv, true);
    if (strcmp(cmd, "batch") == 0) return cmd_batch(argc, argv);
    if (strcmp(cmd, "create") == 0) return cmd_create(argc, argv);
    if (strcmp(cmd, "destroy") == 0) return cmd_uid(argc, argv, "destroy");
    if (strcmp(cmd, "has") == 0) return cmd_uid(argc, argv, "has");
    if (strcmp(cmd, "info") == 0) return cmd_info(argc, argv);
    int rc = xo_cli_cluster_command(cmd, argc, argv);
    if (rc >= 0) return rc;
    fprintf(stderr, "xoscar: unknown command \"%s\"\n", cmd);
    return usage(stderr, 2);
}
