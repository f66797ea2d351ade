/* xoscar logs FILE [--pool P] [-f]: the log lines of the cluster's pools on this machine.
 *
 * Every pool of a host started by `xoscar up` appends to its own file in the cluster's run directory (<host>.log for
 * the main pool, <host>@N.log for sub pool N; cluster_commands.c and cluster/host.c name them). Lines start with
 * "[L 2026-12-03T15:49:28.123456Z ...": ISO 8601 in UTC with a fixed width, so comparing them as strings orders
 * them in time, and all pools merge into one stream by a k-way merge. A line without that prefix (what a pool wrote
 * to stderr other than a log line: a sanitizer's report, an abort message) keeps its place after the line before
 * it in its file. -f follows the files as `tail -F` does: new lines as they come (merged within each poll), files of
 * pools started later, and a file truncated or replaced read again from its start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cli/commands.h"
#include "cluster/cluster_file.h"

#define KEY_LEN 27      /* "2026-12-03T15:49:28.123456Z" */
#define FOLLOW_POLL_MS 200
#define RESCAN_POLLS 5  /* look for new pools' files every 5 polls (1 s) */
#define MAX_SOURCES 4096

typedef struct source {
    char *path;
    int fd;             /* -1 while the file does not exist */
    dev_t dev;
    ino_t ino;
    off_t off;          /* bytes read so far */
    char *buf;          /* read but not yet printed: buf[pos, len) */
    size_t pos, len, cap;
    char key[KEY_LEN + 1];      /* the time of the last line printed (what a line without one sorts by) */
    char peek_key[KEY_LEN + 1]; /* the time of the line at pos */
    size_t peek_len;            /* its length with the newline; 0: none ready */
    bool dry;                   /* nothing more to read in this merge (spares a read per line printed) */
} source_t;

typedef struct sources {
    source_t *v;
    size_t n;
} sources_t;

/* The time of a log line, or NULL when it has none. */
static const char *line_time(const char *l, size_t n)
{
    if (n < 4 + KEY_LEN || l[0] != '[' || l[2] != ' ' || l[3 + 4] != '-' || l[3 + 10] != 'T' ||
        l[3 + KEY_LEN - 1] != 'Z')
        return NULL;
    return l + 3;
}

static bool add_source(sources_t *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].path, path)) return true;
    if (s->n == MAX_SOURCES) return false;
    source_t *nv = realloc(s->v, (s->n + 1) * sizeof *nv);
    if (!nv) return false;
    s->v = nv;
    s->v[s->n] = (source_t){.path = strdup(path), .fd = -1};
    return s->v[s->n++].path != NULL;
}

static void close_source(source_t *src)
{
    if (src->fd >= 0) close(src->fd);
    src->fd = -1;
    src->off = 0;
    src->pos = src->len = src->peek_len = 0;
}

/* Opens the file when it exists and is not open yet; reopens it from the start when it was replaced (a new file at
 * its path) or truncated. */
static void refresh(source_t *src)
{
    struct stat st;
    if (stat(src->path, &st) != 0) return; /* gone: what is open stays readable */
    if (src->fd >= 0 && (st.st_dev != src->dev || st.st_ino != src->ino || st.st_size < src->off)) close_source(src);
    if (src->fd >= 0) return;
    src->fd = open(src->path, O_RDONLY | O_CLOEXEC);
    if (src->fd < 0) return;
    struct stat fst;
    if (fstat(src->fd, &fst) == 0) {
        src->dev = fst.st_dev;
        src->ino = fst.st_ino;
    }
}

/* Makes the next line of src ready (peek_len, peek_key), reading more of the file as needed. A last line without
 * its newline counts only when final (no -f: nobody is still writing it). */
static bool peek(source_t *src, bool final)
{
    if (src->peek_len) return true;
    if (src->dry) return false;
    for (;;) {
        char *nl = src->pos < src->len ? memchr(src->buf + src->pos, '\n', src->len - src->pos) : NULL;
        size_t n = nl ? (size_t)(nl - (src->buf + src->pos)) + 1 : 0;
        if (!n && src->fd >= 0) {
            if (src->pos > 0) { /* keep what is unread at the start of buf */
                memmove(src->buf, src->buf + src->pos, src->len - src->pos);
                src->len -= src->pos;
                src->pos = 0;
            }
            if (src->cap - src->len < 65536) {
                size_t cap = src->cap ? src->cap * 2 : 131072;
                char *nb = realloc(src->buf, cap);
                if (!nb) return false;
                src->buf = nb;
                src->cap = cap;
            }
            ssize_t got = read(src->fd, src->buf + src->len, src->cap - src->len);
            if (got > 0) {
                src->len += (size_t)got;
                src->off += got;
                continue;
            }
        }
        if (!n && final && src->pos < src->len) n = src->len - src->pos;
        if (!n) {
            src->dry = true;
            return false;
        }
        const char *t = line_time(src->buf + src->pos, n);
        memcpy(src->peek_key, t ? t : src->key, KEY_LEN);
        src->peek_key[KEY_LEN] = '\0';
        src->peek_len = n;
        return true;
    }
}

static void print_next(source_t *src)
{
    const char *l = src->buf + src->pos;
    fwrite(l, 1, src->peek_len, stdout);
    if (l[src->peek_len - 1] != '\n') fputc('\n', stdout);
    memcpy(src->key, src->peek_key, sizeof src->key);
    src->pos += src->peek_len;
    src->peek_len = 0;
}

/* Prints every line the sources have ready, oldest first (a tie: the source listed first). */
static void merge(sources_t *s, bool final)
{
    for (size_t i = 0; i < s->n; i++) s->v[i].dry = false;
    for (;;) {
        source_t *best = NULL;
        for (size_t i = 0; i < s->n; i++)
            if (peek(&s->v[i], final) && (!best || strcmp(s->v[i].peek_key, best->peek_key) < 0)) best = &s->v[i];
        if (!best) break;
        print_next(best);
    }
    fflush(stdout);
}

/* A file name of one of host's pools in the run directory: "<host>.log" (n 0) or "<host>@<n>.log". */
static bool pool_file(const char *name, const char *host, unsigned long *n_p)
{
    size_t hl = strlen(host);
    if (strncmp(name, host, hl) != 0) return false;
    const char *rest = name + hl;
    if (!strcmp(rest, ".log")) {
        *n_p = 0;
        return true;
    }
    if (rest[0] != '@' || rest[1] < '0' || rest[1] > '9') return false;
    char *end;
    unsigned long n = strtoul(rest + 1, &end, 10);
    if (strcmp(end, ".log") != 0) return false;
    *n_p = n;
    return true;
}

static int by_number(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

/* Adds the files of every pool of every host of c found in dir: host by host as the file lists them, each main
 * pool first and then its sub pools by number (ties in time print in that order). */
static void scan(const xo_cluster_t *c, const char *dir, sources_t *s)
{
    for (size_t h = 0; h < c->n_hosts; h++) {
        DIR *d = opendir(dir);
        if (!d) return;
        unsigned long found[1024];
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d)) && n < 1024;) {
            unsigned long k;
            if (pool_file(e->d_name, c->hosts[h].name, &k)) found[n++] = k;
        }
        closedir(d);
        qsort(found, n, sizeof found[0], by_number);
        for (size_t i = 0; i < n; i++) {
            char path[2048];
            if (found[i] == 0) snprintf(path, sizeof path, "%s/%s.log", dir, c->hosts[h].name);
            else snprintf(path, sizeof path, "%s/%s@%lu.log", dir, c->hosts[h].name, found[i]);
            add_source(s, path);
        }
    }
}

/* The host and sub pool number that P names: a host's name (its main pool), NAME/N, or an address, main pool
 * "host:port" or sub pool "host:port/N", as the file gives it or as a running host's state file says it (port 0).
 * False after printing why. */
static bool resolve_pool(const xo_cluster_t *c, const char *p, size_t *host_p, unsigned long *n_p)
{
    const char *slash = strrchr(p, '/');
    unsigned long n = 0;
    if (slash) {
        char *end;
        n = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end) {
            fprintf(stderr, "xoscar: --pool %s: expected a host's name, NAME/N or an address host:port[/N]\n", p);
            return false;
        }
    }
    size_t stem = slash ? (size_t)(slash - p) : strlen(p);
    if (!memchr(p, ':', stem)) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)stem, p);
        long i = xo__cluster_find_host(c, name);
        if (i < 0) {
            fprintf(stderr, "xoscar: %s has no host named '%s' (give a host's name, NAME/N or an address)\n", c->path,
                    name);
            return false;
        }
        *host_p = (size_t)i;
        *n_p = n;
        return true;
    }
    for (size_t i = 0; i < c->n_hosts; i++) {
        char addresses[2][300] = {"", ""};
        xo_cluster_host_config_t *hc = NULL;
        xo_cluster_error_t err = {0};
        if (xo__cluster_host_config(c, i, NULL, &hc, &err) == XO_OK) {
            snprintf(addresses[0], sizeof addresses[0], "%s", hc->cfg.address);
            xo__cluster_host_config_free(hc);
        }
        xo__cli_host_state_address(c, c->hosts[i].name, addresses[1], sizeof addresses[1]);
        for (int k = 0; k < 2; k++)
            if (addresses[k][0] && strlen(addresses[k]) == stem && !strncmp(addresses[k], p, stem)) {
                *host_p = i;
                *n_p = n;
                return true;
            }
    }
    fprintf(stderr, "xoscar: no pool of %s has the address %s\n", c->path, p);
    return false;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int xo__cli_logs(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') return xo__cli_usage_error(argv[0]);
    const char *pool = NULL;
    bool follow = false;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--pool") && i + 1 < argc) pool = argv[++i];
        else if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow")) follow = true;
        else {
            fprintf(stderr, "xoscar: unexpected argument %s\n", argv[i]);
            return xo__cli_usage_error(argv[0]);
        }
    }
    xo_cluster_t *c = xo_cli_cluster_load(argv[1]);
    if (!c) return 2;
    char dir[1024];
    xo__cli_run_dir(c, dir, sizeof dir);
    sources_t s = {0};
    int rc = 0;
    if (pool) {
        size_t h;
        unsigned long n;
        if (!resolve_pool(c, pool, &h, &n)) rc = 2;
        else {
            char path[2048];
            if (n == 0) snprintf(path, sizeof path, "%s/%s.log", dir, c->hosts[h].name);
            else snprintf(path, sizeof path, "%s/%s@%lu.log", dir, c->hosts[h].name, n);
            add_source(&s, path);
            if (!follow && access(path, R_OK) != 0) {
                fprintf(stderr, "xoscar: no log of pool %s here: %s: %s\n", pool, path, strerror(errno));
                rc = 1;
            }
        }
    } else {
        scan(c, dir, &s);
        if (!follow && s.n == 0) {
            fprintf(stderr, "xoscar: no log of %s's pools in %s (none of its hosts ran on this machine)\n", c->path,
                    dir);
            rc = 1;
        }
    }
    for (size_t i = 0; rc == 0 && i < s.n; i++) refresh(&s.v[i]);
    if (rc == 0) merge(&s, !follow);
    /* -f: until interrupted (SIGINT), or until stdout is closed (SIGPIPE), as tail -f. */
    for (unsigned polls = 1; rc == 0 && follow; polls++) {
        sleep_ms(FOLLOW_POLL_MS);
        if (!pool && polls % RESCAN_POLLS == 0) scan(c, dir, &s);
        for (size_t i = 0; i < s.n; i++) refresh(&s.v[i]);
        merge(&s, false);
        if (ferror(stdout)) rc = 1;
    }
    for (size_t i = 0; i < s.n; i++) {
        close_source(&s.v[i]);
        free(s.v[i].path);
        free(s.v[i].buf);
    }
    free(s.v);
    xo__cluster_free(c);
    return rc;
}
