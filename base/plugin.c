/* The plugin loader (base/plugin.h): where plugins are looked for, the checks a file passes before its ops are
 * used, the one log line per plugin, and the host table plugins reach the core through.
 *
 * Search path, first directory holding the file wins:
 *   1. XO_PLUGIN_PATH, ':'-separated, in order (a user's own build of a plugin, a test's bad one);
 *   2. for code running from this build tree (the tests, the build's libxoscar.so, xoscar and xoscar-pool): the
 *      tree's plugin directory only, so that a build never picks up an installed plugin of another version;
 *   3. otherwise, relative to the file this loader is part of (dladdr): <dir>/xoscar (libxoscar.so in LIBDIR) and
 *      <dir>/../LIBDIR/xoscar (xoscar, xoscar-pool or a program linking libxoscar.a, in BINDIR), then the LIBDIR
 *      the build was configured for. The relative places come first because `cmake --install --prefix` may put
 *      the files somewhere else than the configured prefix.
 * The first file found is the one: when it is refused, the loader does not go on to a later directory, so what is
 * loaded never depends on which broken copies happen to be around. */
#include "base/plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"

#ifndef XO_PLUGIN_BUILD_TREE /* set by base/CMakeLists.txt */
#define XO_PLUGIN_BUILD_TREE ""
#define XO_PLUGIN_BUILD_DIR ""
#define XO_PLUGIN_INSTALL_DIR "/usr/local/lib/xoscar"
#define XO_PLUGIN_LIBDIR "lib"
#endif
#ifndef XO_PLUGINS_BUILT
#define XO_PLUGINS_BUILT ""
#endif

#define MAX_PLUGINS 16 /* names asked for in one process: three real plugins, and the tests' */
#define MAX_DIRS 16
#define WHY_MAX (PATH_MAX + 1024)

typedef enum { UNTRIED = 0, LOADED, MISSING } state_t;

typedef struct entry {
    char name[16];
    state_t state;
    const void *ops;
    char path[PATH_MAX];
    char why[WHY_MAX];
} entry_t;

/* Guards entries; held across a dlopen, so that two threads asking for one plugin at once load it once. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t entries[MAX_PLUGINS];

/* ---- the host table -------------------------------------------------------------------------------------------- */

static int host_log_threshold(void) { return (int)xo__log_threshold(); }

static void host_log_text(int level, const char *file, int line, const char *text)
{
    xo__log_write((xo_log_level_t)level, file, line, "%s", text);
}

static const xo__plugin_host_t host = {
    .abi_version = XO_PLUGIN_ABI_VERSION,
    .error_set_text = xo__error_set_text,
    .last_error = xo_last_error,
    .log_threshold = host_log_threshold,
    .log_text = host_log_text,
};

/* ---- the search path ------------------------------------------------------------------------------------------- */

/* Appends dir to dirs unless it is there already (by its real path when it exists). */
static void add_dir(char dirs[][PATH_MAX], size_t *n, const char *dir)
{
    if (!dir[0] || *n == MAX_DIRS) return;
    char real[PATH_MAX];
    const char *d = realpath(dir, real) ? real : dir;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(dirs[i], d) == 0) return;
    snprintf(dirs[(*n)++], PATH_MAX, "%s", d);
}

/* True when path lies inside the directory tree root (both real paths). */
static bool under(const char *path, const char *root)
{
    char r[PATH_MAX];
    if (!root[0] || !realpath(root, r)) return false;
    size_t n = strlen(r);
    return strncmp(path, r, n) == 0 && path[n] == '/';
}

static size_t search_dirs(char dirs[][PATH_MAX])
{
    size_t n = 0;
    const char *env = getenv("XO_PLUGIN_PATH");
    if (env) {
        char buf[PATH_MAX * 4];
        snprintf(buf, sizeof buf, "%s", env);
        char *save = NULL;
        for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) add_dir(dirs, &n, d);
    }
    Dl_info info;
    char self[PATH_MAX] = "";
    if (dladdr((void *)xo__plugin_load, &info) && info.dli_fname && realpath(info.dli_fname, self)) {
        if (under(self, XO_PLUGIN_BUILD_TREE)) {
            add_dir(dirs, &n, XO_PLUGIN_BUILD_DIR);
            return n;
        }
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            char d[PATH_MAX + 64];
            snprintf(d, sizeof d, "%s/xoscar", self);
            add_dir(dirs, &n, d);
            snprintf(d, sizeof d, "%s/../%s/xoscar", self, XO_PLUGIN_LIBDIR);
            add_dir(dirs, &n, d);
        }
    }
    add_dir(dirs, &n, XO_PLUGIN_INSTALL_DIR);
    return n;
}

void xo__plugin_search_path(char *buf, size_t len)
{
    char dirs[MAX_DIRS][PATH_MAX];
    size_t n = search_dirs(dirs), used = 0;
    if (len) buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i ? ":" : "", dirs[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* ---- loading --------------------------------------------------------------------------------------------------- */

/* Whether XO_PLUGIN_DISABLE (names separated by ',' or ':', or "all") names this plugin. */
static bool disabled(const char *name)
{
    const char *env = getenv("XO_PLUGIN_DISABLE");
    if (!env) return false;
    size_t n = strlen(name);
    for (const char *p = env; *p;) {
        size_t k = strcspn(p, ",:");
        if ((k == n && strncmp(p, name, n) == 0) || (k == 3 && strncmp(p, "all", 3) == 0)) return true;
        p += k;
        if (*p) p++;
    }
    return false;
}

/* Whether this build made plugin name (XO_PLUGINS_BUILT: the names, ','-separated, set by the top CMakeLists). */
static bool built(const char *name)
{
    const char *list = XO_PLUGINS_BUILT;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0) return true;
        p += k;
        if (*p) p++;
    }
    return false;
}

/* Loads e's file and checks it: true with e->ops set, or false with e->why saying why. Caller holds lock. */
static bool load(entry_t *e, xo__plugin_kind_t kind, uint32_t layout, bool *found_p)
{
    *found_p = false;
    if (disabled(e->name)) {
        snprintf(e->why, sizeof e->why, "disabled by XO_PLUGIN_DISABLE=%s", getenv("XO_PLUGIN_DISABLE"));
        return false;
    }
    char dirs[MAX_DIRS][PATH_MAX];
    size_t n = search_dirs(dirs);
    char file[64];
    snprintf(file, sizeof file, "libxoscar-%s.so", e->name);
    for (size_t i = 0; i < n && !*found_p; i++) {
        snprintf(e->path, sizeof e->path, "%s/%s", dirs[i], file);
        *found_p = access(e->path, F_OK) == 0;
    }
    if (!*found_p) {
        char path[1024];
        xo__plugin_search_path(path, sizeof path);
        snprintf(e->why, sizeof e->why, "not installed: %s is in none of %s%s", file, path[0] ? path : "(no directory)",
                 built(e->name) ? "" : " (and this build made none: its toolkit was not found, or it was turned off)");
        e->path[0] = '\0';
        return false;
    }
    /* RTLD_NOW: a vendor library too old for the plugin fails here, with the symbol's name, not at its first call.
     * RTLD_LOCAL: the plugin's own and its vendor's symbols stay out of the process's global scope. */
    void *h = dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *err = dlerror();
        snprintf(e->why, sizeof e->why, "%s", err ? err : "dlopen failed");
        return false;
    }
    const xo__plugin_t *d = dlsym(h, XO_PLUGIN_SYMBOL);
    const char *refused = NULL;
    char text[256];
    if (!d) {
        refused = "it has no " XO_PLUGIN_SYMBOL " descriptor (not a Xoscar-C plugin)";
    } else if (d->abi_version != XO_PLUGIN_ABI_VERSION) {
        snprintf(text, sizeof text, "it was built for plugin ABI %u, this runtime loads ABI %u (a plugin of another "
                 "Xoscar-C version)", d->abi_version, XO_PLUGIN_ABI_VERSION);
        refused = text;
    } else if (d->kind != (uint32_t)kind || !d->name || strcmp(d->name, e->name) != 0) {
        snprintf(text, sizeof text, "it is plugin \"%s\" of kind %u, not \"%s\" of kind %u", d->name ? d->name : "?",
                 d->kind, e->name, (unsigned)kind);
        refused = text;
    } else if (d->layout != layout || !d->attach || !d->ops) {
        snprintf(text, sizeof text, "its structures do not match this runtime's (layout %#x, expected %#x): a "
                 "plugin of another build", d->layout, layout);
        refused = text;
    }
    if (refused) {
        snprintf(e->why, sizeof e->why, "%s: %s", e->path, refused);
        /* Left open: the file's dependencies have run their constructors, and some cannot be unloaded safely
         * (libucm, which libucp brings in, patches other objects' relocations to hook mmap). A refused file costs
         * its mappings, once per process. */
        return false;
    }
    d->attach(&host);
    e->ops = d->ops;
    return true; /* the handle stays open for the life of the process: its ops are in use */
}

static entry_t *find_entry(const char *name)
{
    for (size_t i = 0; i < MAX_PLUGINS; i++)
        if (entries[i].name[0] && strcmp(entries[i].name, name) == 0) return &entries[i];
    return NULL;
}

const void *xo__plugin_load(const char *name, xo__plugin_kind_t kind, uint32_t layout, const char *without)
{
    if (!name || !name[0] || strlen(name) >= sizeof entries[0].name) return NULL;
    pthread_mutex_lock(&lock);
    entry_t *e = find_entry(name);
    if (!e)
        for (size_t i = 0; i < MAX_PLUGINS && !e; i++)
            if (!entries[i].name[0]) e = &entries[i];
    if (!e) { /* more plugin names than the table holds: a programming error, not a user's */
        pthread_mutex_unlock(&lock);
        xo_log_error("plugin %s: the loader's table is full (%d plugins)", name, MAX_PLUGINS);
        return NULL;
    }
    if (e->state == UNTRIED) {
        snprintf(e->name, sizeof e->name, "%s", name);
        bool found = false;
        if (load(e, kind, layout, &found)) {
            e->state = LOADED;
            xo_log_info("plugin %s: loaded %s", name, e->path);
        } else {
            e->state = MISSING;
            /* Not installed (or turned off) is a normal machine without that hardware; a file that is there but
             * cannot be used is a broken install, worth a warning. */
            if (found) xo_log_warn("plugin %s: not loaded: %s; %s", name, e->why, without);
            else xo_log_info("plugin %s: not loaded: %s; %s", name, e->why, without);
        }
    }
    const void *ops = e->state == LOADED ? e->ops : NULL;
    pthread_mutex_unlock(&lock);
    return ops;
}

const char *xo__plugin_why(const char *name)
{
    pthread_mutex_lock(&lock);
    entry_t *e = name ? find_entry(name) : NULL;
    /* The entry's text is written once, before its state leaves UNTRIED, and never again: it may be read unlocked
     * from here on. */
    const char *why = e && e->state == MISSING ? e->why : NULL;
    pthread_mutex_unlock(&lock);
    return why;
}

const char *xo__plugin_path(const char *name)
{
    pthread_mutex_lock(&lock);
    entry_t *e = name ? find_entry(name) : NULL;
    const char *path = e && e->state == LOADED ? e->path : NULL;
    pthread_mutex_unlock(&lock);
    return path;
}
