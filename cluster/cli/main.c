/* xoscar: the command line.
 *
 *   xoscar call ADDRESS UID METHOD [JSON-ARGS]   call a method, print its result as JSON
 *   xoscar tell ADDRESS UID METHOD [JSON-ARGS]   send without waiting
 *   xoscar batch ADDRESS UID METHOD '[[ARGS]...]'  many calls of one extensible method as one message
 *   xoscar create ADDRESS CLASS [--uid UID] [PLACEMENT...] [JSON-ARGS]   create an actor (its class must be known
 *       there); with PLACEMENT options (--strategy NAME, --near UID[:BYTES[:dev|in|dev,in]], --cluster-scope) ADDRESS is a
 *       host's main pool and its placement service chooses the pool
 *   xoscar destroy ADDRESS UID | has ADDRESS UID | info ADDRESS
 *   xoscar actors ADDRESS... | FILE [HOST...]   the actors of pools, hosts or a cluster (actors.c)
 *
 * Options before the command: --cluster FILE (the secret from FILE; ADDRESS may be a host's name in it),
 * --timeout MS, --log-level L, --version, --help; `xoscar COMMAND --help` shows one command.
 *
 * Exit codes: 0 done; 1 the actor or pool answered with an error; 2 bad usage or a bad cluster file; 3 the pool
 * could not be reached, died, or refused us (a wrong secret). Errors go to stderr as "xoscar: XO_NAME: text". */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cli/commands.h"
#include "cluster/cli/json_msgpack.h"
#include "runtime/core.h"
#include "base/log.h"
#include "base/plugin.h"
#include "services/plugins.h"
#include "runtime/remote.h"
#include "xoscar/host.h"
#include "xoscar/module.h"

int xo_cli_fail(xo_status_t st)
{
    fprintf(stderr, "xoscar: %s: %s\n", xo_status_name(st), xo_last_error()[0] ? xo_last_error() : xo_strerror(st));
    /* 3: nothing answered us as a member of the cluster (unreachable, dead, closed, or refused: a wrong secret). */
    return (st == XO_EUNREACHABLE || st == XO_EPOOLDIED || st == XO_EREFUSED || st == XO_ECLOSED || st == XO_EAUTH)
               ? 3
               : 1;
}

/* The commands of this file; the cluster commands' lines come from xo_cli_cluster_usage(). One line per command
 * starting with two spaces and its name; continuation lines start with more. */
static const char *const call_usage =
    "  call ADDRESS UID METHOD [JSON-ARGS]       call a method; print the result as JSON\n"
    "  tell ADDRESS UID METHOD [JSON-ARGS]       send a call without waiting for it\n"
    "  batch ADDRESS UID METHOD '[[ARGS], ...]'  calls of one extensible method as one message\n"
    "  create ADDRESS CLASS [--uid UID] [--strategy NAME] [--near UID[:BYTES[:dev|in|dev,in]]]...\n"
    "         [--cluster-scope]\n"
    "         [JSON-ARGS]                        create an actor; print its uid. With --strategy, --near or\n"
    "                                            --cluster-scope, ADDRESS is a host's main pool and its placement\n"
    "                                            chooses the pool: near an actor (uid or pool address) with BYTES\n"
    "                                            per call (K, M, G: KiB, MiB, GiB; :dev when they are device\n"
    "                                            buffers, :in when they flow from it to the new actor; a main\n"
    "                                            pool's address needs its :BYTES), among every\n"
    "                                            host's pools with --cluster-scope\n"
    "  destroy ADDRESS UID                       destroy an actor\n"
    "  has ADDRESS UID                           print true or false\n"
    "  info ADDRESS                              print the pool's pid and actor count\n"
    "  actors ADDRESS...|FILE [HOST...] [--json] the actors of pools, or of every pool of a cluster file (or of\n"
    "                                            the hosts named, NAME/N for one pool): uid, class, state,\n"
    "                                            messages waiting, activations running or suspended\n";

static const char *const notes =
    "JSON-ARGS is a JSON array: '[1, \"two\", {\"three\": 3}]'. ADDRESS is host:port or host:port/N, or with\n"
    "--cluster a host's name in the file (its main pool) or NAME/N (its sub pool N).\n"
    "Options (before COMMAND): --cluster FILE (the secret and addresses come from FILE)   --timeout MS (default\n"
    "30000)   --log-level error|warn|info|debug|trace (over XO_LOG_LEVEL and the file's log_level)   --version\n"
    "--help; COMMAND --help for one command.\n"
    "Exit codes: 0 done, 1 the call failed, 2 bad usage or a bad file, 3 pool unreachable, dead or refusing us.\n";

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: xoscar [OPTIONS] COMMAND ...\n%s%s%s", call_usage, xo_cli_cluster_usage(), notes);
    return code;
}

/* Writes the lines of text that belong to cmd (its line and the continuation lines after it); false: none. */
static bool print_command_lines(FILE *out, const char *text, const char *cmd)
{
    size_t n = strlen(cmd);
    bool found = false, in = false;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        bool continuation = len > 3 && !strncmp(line, "   ", 3);
        if (!continuation) in = len > 2 + n && !strncmp(line + 2, cmd, n) && line[2 + n] == ' ';
        if (in) fwrite(line, 1, len, out), found = true;
        line += len;
    }
    return found;
}

static bool command_usage(FILE *out, const char *cmd)
{
    fputs("usage: xoscar [OPTIONS]\n", out);
    bool found = print_command_lines(out, call_usage, cmd) || print_command_lines(out, xo_cli_cluster_usage(), cmd);
    if (found) fputs(notes, out);
    return found;
}

int xo__cli_usage_error(const char *cmd)
{
    if (!command_usage(stderr, cmd)) return usage(stderr, 2);
    return 2;
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
    if (argc < 4 || argc > 5) return xo__cli_usage_error(argv[0]);
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
    if (argc != 5) return xo__cli_usage_error(argv[0]);
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

/* One --near value, UID[:BYTES[:FLAGS]] (FLAGS: dev, in, or both as dev,in), into n (its actor points into text, which is modified). BYTES is the part
 * after the last ':' when it is a count (a pool address has ':' of its own: "127.0.0.1:7300/2" has no bytes, and a
 * main pool's "127.0.0.1:7300" must be written with them, "127.0.0.1:7300:0"). False when it is malformed. */
static bool parse_near(char *text, xo_near_t *n)
{
    *n = (xo_near_t){.actor = text};
    char *c = strrchr(text, ':');
    bool flags = false;
    if (c && (strcmp(c + 1, "dev") == 0 || strcmp(c + 1, "in") == 0 || strcmp(c + 1, "dev,in") == 0 ||
              strcmp(c + 1, "in,dev") == 0)) {
        n->device_buf = strstr(c + 1, "dev") != NULL;
        n->inbound = strstr(c + 1, "in") == c + 1 || strstr(c + 1, ",in") != NULL;
        flags = true;
        *c = '\0';
        c = strrchr(text, ':');
        if (!c) return false; /* the flags say what the bytes are: there must be bytes */
    }
    if (c && c[1] >= '0' && c[1] <= '9') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(c + 1, &end, 10);
        unsigned shift = 0;
        if (*end == 'K') shift = 10;
        else if (*end == 'M') shift = 20;
        else if (*end == 'G') shift = 30;
        if (shift) end++;
        if (errno || *end || (shift && v > (~0ull >> shift))) return false;
        n->bytes = (uint64_t)v << shift;
        *c = '\0';
    } else if (flags) {
        return false;
    }
    return text[0] != '\0';
}

#define CLI_MAX_NEAR 64 /* the host's bound on near actors */

static int cmd_create(int argc, char **argv)
{
    if (argc < 3) return xo__cli_usage_error(argv[0]);
    const char *uid = NULL;
    xo_placement_t pl = {0};
    xo_near_t near[CLI_MAX_NEAR];
    bool placed = false;
    int i = 3;
    for (; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--uid") == 0) {
            uid = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--strategy") == 0) {
            pl.strategy = argv[++i];
            placed = true;
        } else if (i + 1 < argc && strcmp(argv[i], "--near") == 0) {
            if (pl.n_near == CLI_MAX_NEAR) {
                fprintf(stderr, "xoscar: create: at most %d --near\n", CLI_MAX_NEAR);
                return 2;
            }
            if (!parse_near(argv[++i], &near[pl.n_near])) {
                fprintf(stderr, "xoscar: create: --near wants UID[:BYTES[:dev|in|dev,in]] (BYTES a count, K/M/G for "
                                "KiB/MiB/GiB), got '%s'\n", argv[i]);
                return 2;
            }
            pl.n_near++;
            placed = true;
        } else if (strcmp(argv[i], "--cluster-scope") == 0) {
            pl.cluster = true;
            placed = true;
        } else {
            break;
        }
    }
    if (i + 1 < argc) return xo__cli_usage_error(argv[0]);
    pl.near = pl.n_near ? near : NULL;
    xo_args_t *args;
    int rc = parse_args(argc, argv, i, &args);
    if (rc) return rc;
    xo_ref_t *ref;
    xo_status_t st = placed ? xo_create_actor_placed(argv[2], args, argv[1], uid, &pl, &ref)
                            : xo_create_actor_by_name(argv[2], args, argv[1], uid, &ref);
    if (st != XO_OK) return xo_cli_fail(st);
    printf("%s\n", xo_ref_uid(ref));
    xo_ref_free(ref);
    return 0;
}

static int cmd_uid(int argc, char **argv, const char *what)
{
    if (argc != 3) return xo__cli_usage_error(argv[0]);
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
    if (argc != 2) return xo__cli_usage_error(argv[0]);
    int pid = 0;
    uint64_t actors = 0;
    xo_status_t st = xo_cli_pool_info(argv[1], timeout_ms, &pid, &actors);
    if (st != XO_OK) return xo_cli_fail(st);
    printf("{\"address\": \"%s\", \"pid\": %d, \"actors\": %llu}\n", argv[1], pid, (unsigned long long)actors);
    return 0;
}

xo_status_t xo_cli_pool_request(const char *address, int type, int64_t timeout_ms, xo_result_t **r_p)
{
    xo_future_t *f = NULL;
    xo_status_t st = xo__remote_send(address, type, 0, "", NULL, NULL, true, &f);
    if (st != XO_OK) return st;
    st = xo_future_wait(f, timeout_ms, r_p);
    if (st == XO_ETIMEDOUT) xo__future_request_cancel(f);
    xo__future_unref(f);
    return st;
}

xo_status_t xo_cli_pool_info(const char *address, int64_t timeout, int *pid, uint64_t *actors)
{
    xo_result_t *r = NULL;
    xo_status_t st = xo_cli_pool_request(address, XO_WIRE_INFO, timeout, &r);
    if (st != XO_OK) return st;
    st = xo_result_unpack(r, "[iu*]", pid, actors);
    xo_result_free(r);
    return st;
}

/* A timeout in ms: a whole number above 0, or a usage error (never a silent 0). */
static bool parse_timeout(const char *s, int64_t *ms_p)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0) {
        fprintf(stderr, "xoscar: --timeout takes milliseconds, a whole number above 0 (got \"%s\")\n", s);
        return false;
    }
    *ms_p = v;
    return true;
}

static bool takes_address(const char *cmd)
{
    static const char *const cmds[] = {"call", "tell", "batch", "create", "destroy", "has", "info"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i])) return true;
    return false;
}

/* One line per plugin (docs/plugins.md): the file it came from, or why there is none. */
static void print_plugins(void)
{
    xo__plugins_load_all();
    size_t n = 0;
    const char *const *names = xo__plugin_names(&n);
    for (size_t i = 0; i < n; i++) {
        const char *path = xo__plugin_path(names[i]), *why = xo__plugin_why(names[i]);
        printf("plugin %s: %s%s\n", names[i], path ? "loaded " : "not loaded: ", path ? path : why ? why : "?");
    }
}

int main(int argc, char **argv)
{
    int i = 1;
    const char *cluster_file = NULL;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--help") == 0) return usage(stdout, 0);
        if (strcmp(argv[i], "--version") == 0) {
            printf("xoscar %s\n", XO_VERSION);
            print_plugins();
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "xoscar: %s needs a value\n", argv[i]);
            return usage(stderr, 2);
        }
        if (strcmp(argv[i], "--log-level") == 0) {
            /* Through the environment: it then wins over XO_LOG_LEVEL and the cluster file's log_level, and
             * reaches the pools `up` starts (cluster_commands.c, apply_log_level). */
            xo_log_level_t level;
            if (!xo__log_parse_level(argv[i + 1], &level)) {
                fprintf(stderr, "xoscar: --log-level takes error, warn, info, debug or trace (got \"%s\")\n",
                        argv[i + 1]);
                return usage(stderr, 2);
            }
            setenv("XO_LOG_LEVEL", xo__log_level_name(level), 1);
            xo__log_set_threshold(level);
        }
        else if (strcmp(argv[i], "--timeout") == 0) {
            if (!parse_timeout(argv[i + 1], &timeout_ms)) return 2;
        } else if (strcmp(argv[i], "--cluster") == 0) cluster_file = argv[i + 1];
        else {
            fprintf(stderr, "xoscar: unknown option %s\n", argv[i]);
            return usage(stderr, 2);
        }
    }
    if (i >= argc) return usage(stderr, 2);
    const char *cmd = argv[i];
    argc -= i;
    argv += i;
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        if (command_usage(stdout, cmd)) return 0;
        fprintf(stderr, "xoscar: unknown command \"%s\"\n", cmd);
        return usage(stderr, 2);
    }
    char address[300];
    if (cluster_file && takes_address(cmd)) {
        if (argc < 2) return xo__cli_usage_error(cmd);
        int rc = xo__cli_use_cluster(cluster_file, argv[1], address, sizeof address);
        if (rc) return rc;
        argv[1] = address;
    }
    if (strcmp(cmd, "call") == 0) return cmd_call(argc, argv, false);
    if (strcmp(cmd, "tell") == 0) return cmd_call(argc, argv, true);
    if (strcmp(cmd, "batch") == 0) return cmd_batch(argc, argv);
    if (strcmp(cmd, "create") == 0) return cmd_create(argc, argv);
    if (strcmp(cmd, "destroy") == 0) return cmd_uid(argc, argv, "destroy");
    if (strcmp(cmd, "has") == 0) return cmd_uid(argc, argv, "has");
    if (strcmp(cmd, "info") == 0) return cmd_info(argc, argv);
    if (strcmp(cmd, "actors") == 0) return xo__cli_actors(argc, argv, cluster_file, timeout_ms);
    int rc = xo_cli_cluster_command(cmd, argc, argv);
    if (rc >= 0) return rc;
    fprintf(stderr, "xoscar: unknown command \"%s\"\n", cmd);
    return usage(stderr, 2);
}
