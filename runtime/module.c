/* Actor modules: dlopen a library, check its descriptor, register its classes. See include/xoscar/module.h.
 *
 * The list of loaded modules only grows: a module is never unloaded (actors may be running its code), so its
 * entry, handle and descriptor live until the process exits. */
#include "xoscar/module.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "runtime/remote.h"

typedef struct module_entry {
    void *handle;                   /* from dlopen; never closed; NULL for a Python module (the plugin holds it) */
    char *path;                     /* as first given, for error texts */
    const xo_module_v1_t *mod;
    struct module_entry *next;
} module_entry_t;

/* Serialises loads (so two threads loading one file register its classes once) and guards the list. Lock order:
 * modules_lock, then the class registry's lock inside xo_register_class / xo__class_find; never the other way. */
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static module_entry_t *modules;     /* newest first */

/* The loaded module that holds cls, or NULL. Caller holds modules_lock. */
static const module_entry_t *owner_of(const xo_actor_class_t *cls)
{
    for (const module_entry_t *e = modules; e; e = e->next)
        for (size_t i = 0; i < e->mod->n_classes; i++)
            if (e->mod->classes[i] == cls) return e;
    return NULL;
}

/* Checks mod's descriptor and that none of its class names is taken by another class; registers nothing. Caller
 * holds modules_lock. */
static xo_status_t check_module(const char *path, const xo_module_v1_t *mod)
{
    if (!mod->name || !mod->name[0]) return xo__error_set(XO_EINVAL, "module %s: its descriptor has no name", path);
    if (mod->n_classes && !mod->classes)
        return xo__error_set(XO_EINVAL, "module %s (%s): %zu classes but no class array", path, mod->name,
                            mod->n_classes);
    for (const module_entry_t *e = modules; e; e = e->next)
        if (strcmp(e->mod->name, mod->name) == 0)
            return xo__error_set(XO_EEXIST, "module %s is named %s, like the module already loaded from %s", path,
                                mod->name, e->path);
    for (size_t i = 0; i < mod->n_classes; i++) {
        const xo_actor_class_t *cls = mod->classes[i];
        if (!cls || !cls->name)
            return xo__error_set(XO_EINVAL, "module %s (%s): class %zu is NULL or has no name", path, mod->name, i);
        for (size_t j = 0; j < i; j++)
            if (mod->classes[j] != cls && strcmp(mod->classes[j]->name, cls->name) == 0)
                return xo__error_set(XO_EEXIST, "module %s (%s): two classes are named %s", path, mod->name,
                                    cls->name);
        const xo_actor_class_t *other = xo__class_find(cls->name);
        if (other && other != cls) {
            const module_entry_t *e = owner_of(other);
            if (e)
                return xo__error_set(XO_EEXIST,
                                    "module %s (%s): class %s conflicts with class %s of module %s (%s), already "
                                    "registered",
                                    path, mod->name, cls->name, other->name, e->mod->name, e->path);
            return xo__error_set(XO_EEXIST,
                                "module %s (%s): class %s conflicts with class %s already registered by the program",
                                path, mod->name, cls->name, other->name);
        }
    }
    return XO_OK;
}

/* Refuses a module whose calls into the runtime would reach another copy of it than this one (the program links
 * the runtime statically without exporting it, and the module pulled libxoscar.so in): its actors would run, but
 * their xo_sleep_ms would block the thread, xo_call would see no pools, and their errors would be lost. The
 * dynamic linker binds the module's references to the first definition in the global scope, else in the module's
 * own dependencies; probing one runtime symbol the same way tells which copy the module uses. A module that
 * references no runtime symbol finds none and passes. */
static xo_status_t check_same_runtime(const char *path, void *h)
{
    void *ours = (void *)&xo_register_class;
    void *theirs = dlsym(RTLD_DEFAULT, "xo_register_class");
    if (!theirs) theirs = dlsym(h, "xo_register_class");
    dlerror();
    if (!theirs || theirs == ours) return XO_OK;
    Dl_info a = {0}, b = {0};
    dladdr(ours, &a);
    dladdr(theirs, &b);
    return xo__error_set(XO_ECONFIG,
                        "module %s uses the xoscar runtime in %s, not this process's (in %s): link the program "
                        "against libxoscar.so, or export its symbols (-rdynamic)",
                        path, b.dli_fname ? b.dli_fname : "?", a.dli_fname ? a.dli_fname : "?");
}

/* Adds mod (from a .so or the Python plugin) to the list and registers its classes. Caller holds modules_lock; on
 * XO_OK the entry takes handle and a copy of path. */
static xo_status_t add_module(void *h, const char *path, const xo_module_v1_t *mod)
{
    xo_status_t st = check_module(path, mod);
    if (st != XO_OK) return st;
    module_entry_t *e = calloc(1, sizeof *e);
    char *p = strdup(path);
    if (!e || !p) {
        free(e);
        free(p);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < mod->n_classes; i++) {
        st = xo_register_class(mod->classes[i]);
        if (st != XO_OK) {
            /* Keep xo_register_class's reason, prefixed with the module. Classes 0..i-1 stay registered: the
             * registry has no way back, and the header says so. */
            char why_cls[XO_ERROR_TEXT_MAX];
            snprintf(why_cls, sizeof why_cls, "%s", xo_last_error());
            free(e);
            free(p);
            return xo__error_set(st, "module %s (%s): class %s refused: %s", path, mod->name, mod->classes[i]->name,
                                why_cls);
        }
    }
    e->handle = h;
    e->path = p;
    e->mod = mod;
    e->next = modules;
    modules = e;
    return XO_OK;
}

/* The Python embedding's plugin, opened on the first "python:" module and never closed (its interpreter runs the
 * classes' code). Guarded by modules_lock. */
static void *python_plugin;
static xo_python_loader_fn python_load;

/* Opens the plugin: $XO_PYTHON_PLUGIN (then no other), else where this build puts it (the build tree), else the install's libdir
 * next to the program's (or libxoscar.so's) directory (an install moved with --prefix), else the configured install
 * path, else the library path. Caller holds modules_lock. */
static xo_status_t open_python_plugin(const char *spec)
{
#ifndef XO_PYTHON_PLUGIN_BUILD
    return xo__error_set(XO_ENOTSUP,
                        "module %s: this build of Xoscar-C has no Python embedding (configured with XO_PYTHON=OFF, "
                        "or libpython was not found: install python3-dev, then configure and build again)",
                        spec);
#else
    if (python_load) return XO_OK;
    const char *env = getenv("XO_PYTHON_PLUGIN");
    char near[4096] = "";
    Dl_info self = {0};
    const char *slash = dladdr((void *)&xo_module_load, &self) && self.dli_fname ? strrchr(self.dli_fname, '/') : NULL;
    if (slash)
        snprintf(near, sizeof near, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname,
                 XO_PYTHON_PLUGIN_RELATIVE);
    const char *tries[] = {env && env[0] ? env : NULL, XO_PYTHON_PLUGIN_BUILD, near[0] ? near : NULL,
                           XO_PYTHON_PLUGIN_INSTALL, "libxoscar_python.so"};
    size_t n_tries = env && env[0] ? 1 : sizeof tries / sizeof tries[0]; /* one named by hand is the only one */
    char why[512] = "";
    for (size_t i = 0; i < n_tries && !python_plugin; i++) {
        if (!tries[i]) continue;
        /* RTLD_LOCAL: the plugin's own symbols stay its own; it makes libpython global itself, for the C
         * extensions the interpreter imports. */
        python_plugin = dlopen(tries[i], RTLD_NOW | RTLD_LOCAL);
        if (!python_plugin) {
            const char *e = dlerror();
            if (!why[0] || i == 0) snprintf(why, sizeof why, "%s", e ? e : tries[i]);
        }
    }
    if (!python_plugin)
        return xo__error_set(XO_ENOTSUP, "module %s: cannot load the Python embedding (libxoscar_python.so): %s", spec,
                            why);
    dlerror();
    python_load = (xo_python_loader_fn)dlsym(python_plugin, XO_PYTHON_LOADER_SYMBOL);
    if (!python_load) {
        const char *e = dlerror();
        return xo__error_set(XO_ENOTSUP, "module %s: the Python embedding lacks %s: %s", spec,
                            XO_PYTHON_LOADER_SYMBOL, e ? e : "NULL");
    }
    return check_same_runtime("libxoscar_python.so", python_plugin);
#endif
}

/* xo_module_load of "python:NAME". Caller holds modules_lock. */
static xo_status_t load_python(const char *spec, const xo_module_v1_t **mod_p)
{
    const char *name = spec + strlen(XO_PYTHON_PREFIX);
    if (!name[0]) return xo__error_set(XO_EINVAL, "module %s: no Python module named after the prefix", spec);
    for (module_entry_t *e = modules; e; e = e->next) {
        if (strcmp(e->path, spec) == 0) { /* imported already: Python's import would return the same module */
            if (mod_p) *mod_p = e->mod;
            return XO_OK;
        }
    }
    xo_status_t st = open_python_plugin(spec);
    if (st != XO_OK) return st;
    const xo_module_v1_t *mod = NULL;
    char why[XO_ERROR_TEXT_MAX] = "";
    st = python_load(name, &mod, why, sizeof why);
    if (st != XO_OK) return xo__error_set(st, "module %s: %s", spec, why[0] ? why : xo_strerror(st));
    st = add_module(NULL, spec, mod); /* no handle of its own: the plugin holds every Python module */
    if (st == XO_OK && mod_p) *mod_p = mod;
    return st;
}

xo_status_t xo_module_load(const char *path, const xo_module_v1_t **mod_p)
{
    if (!path || !path[0]) return xo__error_set(XO_EINVAL, "module: no path");
    pthread_mutex_lock(&modules_lock);
    if (strncmp(path, XO_PYTHON_PREFIX, strlen(XO_PYTHON_PREFIX)) == 0) {
        xo_status_t st = load_python(path, mod_p);
        pthread_mutex_unlock(&modules_lock);
        return st;
    }
    /* RTLD_NOW: a missing symbol fails here, with its name, rather than at the first call of an actor method.
     * RTLD_LOCAL: two modules may hold file-local helpers with the same names without one binding to the other. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        pthread_mutex_unlock(&modules_lock);
        return xo__error_set(XO_EINVAL, "module %s cannot be loaded: %s", path, why ? why : "unknown dlopen error");
    }
    /* dlopen of a file already open returns its handle again (one more reference), whatever path names it. */
    for (module_entry_t *e = modules; e; e = e->next) {
        if (e->handle == h) {
            dlclose(h); /* drops only the reference just taken; the library stays mapped */
            if (mod_p) *mod_p = e->mod;
            pthread_mutex_unlock(&modules_lock);
            return XO_OK;
        }
    }
    /* From here on the handle is never closed, even on error: a refused library may have run constructors that
     * left threads or callbacks behind, and unmapping it under them would crash later, far from the cause. */
    dlerror(); /* clear, so that a NULL from dlsym is told apart from a symbol whose value is NULL */
    const xo_module_v1_t *mod = dlsym(h, XO_MODULE_SYMBOL);
    const char *why = dlerror();
    xo_status_t st;
    if (!mod) {
        st = xo__error_set(XO_EINVAL, "module %s does not export %s: %s", path, XO_MODULE_SYMBOL,
                          why ? why : "the symbol is NULL");
        goto out;
    }
    /* Only the first field is read before the version is known: every version keeps abi_version first. */
    if (mod->abi_version != XO_MODULE_ABI_V1) {
        st = xo__error_set(XO_ENOTSUP, "module %s has abi_version %u; this runtime loads abi_version %u only", path,
                          mod->abi_version, XO_MODULE_ABI_V1);
        goto out;
    }
    st = check_same_runtime(path, h);
    if (st != XO_OK) goto out;
    st = add_module(h, path, mod);
    if (st == XO_OK && mod_p) *mod_p = mod;
out:
    pthread_mutex_unlock(&modules_lock);
    return st;
}

const xo_module_v1_t *xo_module_loaded(const char *name)
{
    if (!name) return NULL;
    pthread_mutex_lock(&modules_lock);
    const module_entry_t *e = modules;
    while (e && strcmp(e->mod->name, name) != 0) e = e->next;
    const xo_module_v1_t *mod = e ? e->mod : NULL;
    pthread_mutex_unlock(&modules_lock);
    return mod;
}

xo_status_t xo_create_actor_by_name(const char *class_name, xo_args_t *args, const char *address, const char *uid,
                                    xo_ref_t **ref_p)
{
    const xo_actor_class_t *cls = class_name ? xo__class_find(class_name) : NULL;
    if (!cls && class_name && address && !xo__pool_find(address) && xo__remote_address_ok(address))
        return xo__create_remote(address, class_name, args, uid, ref_p); /* the remote pool knows the class */
    if (!cls) {
        xo_args_free(args); /* consumed, whatever the result */
        return xo__error_set(XO_ENOCLASS, "no actor class named %s is registered", class_name ? class_name : "(null)");
    }
    return xo_create_actor(cls, args, address, uid, ref_p);
}
