/* Xoscar-C actor modules: actor classes shipped in a shared library and loaded at run time.
 *
 * A module is a shared library that exports one symbol, xo_module_v1, describing the classes it holds. Every
 * process of a cluster loads the same modules, so that an actor created by class name can live in any pool (a
 * create travels by class name, see xo_register_class).
 *
 *     static const xo_actor_class_t counter_class = { ... };
 *     static const xo_actor_class_t echo_class = { ... };
 *     XO_MODULE_DEFINE("my_actors", &counter_class, &echo_class);
 *
 * Versioning: abi_version is the first field of every version of the descriptor, so a loader reads it before
 * anything else and refuses a version it does not know (a v2 module on a v1 runtime fails to load with an error
 * naming both versions; it is never read as a v1 descriptor). A later runtime keeps loading v1 modules.
 *
 * One runtime per process: a module does not link libxoscar. Its xo_* references bind, at load time, to the runtime
 * of the process that loads it: a program that links libxoscar.so, or one that links the runtime statically and
 * exports its symbols (-rdynamic / ENABLE_EXPORTS, as xoscar-pool and the test programs do). In a program that
 * does neither, loading fails with dlopen's "undefined symbol". A module that links libxoscar.so anyway works where
 * its references bind to this process's runtime; where they would bind to a second copy (its actors would run,
 * but their calls would reach a runtime with no pools), xo_module_load refuses it with XO_ECONFIG.
 *
 * Unloading: modules are never unloaded. Their classes stay registered and actors may be running their code on any
 * thread; dlclose would unmap code that is still in use. Handles live until the process exits. */
#ifndef XOSCAR_MODULE_H
#define XOSCAR_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "xoscar/xoscar.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XO_MODULE_ABI_V1 1u

/* The name of the symbol a module exports. */
#define XO_MODULE_SYMBOL "xo_module_v1"

/* Version 1 of a module's descriptor. Later versions only add fields at the end; abi_version stays first. */
typedef struct xo_module_v1 {
    uint32_t abi_version;                     /* XO_MODULE_ABI_V1 */
    const char *name;                         /* unique among the modules of a process */
    const xo_actor_class_t *const *classes;   /* n_classes pointers; static storage */
    size_t n_classes;
} xo_module_v1_t;

#ifdef __cplusplus
#define XO_MODULE_EXTERN_ extern "C"
#else
#define XO_MODULE_EXTERN_ extern
#endif

/* Defines and exports the module descriptor in one line: XO_MODULE_DEFINE("name", &class_a, &class_b). Use it once
 * per module, at file scope, in a library built with this header. */
#define XO_MODULE_DEFINE(module_name, ...)                                                                       \
    static const xo_actor_class_t *const xo_module_classes_[] = {__VA_ARGS__};                                 \
    XO_MODULE_EXTERN_ XO_API const xo_module_v1_t xo_module_v1;                                                 \
    const xo_module_v1_t xo_module_v1 = {                                                                      \
        .abi_version = XO_MODULE_ABI_V1,                                                                       \
        .name = (module_name),                                                                                 \
        .classes = xo_module_classes_,                                                                         \
        .n_classes = sizeof xo_module_classes_ / sizeof xo_module_classes_[0],                                 \
    }

/* Modules written in Python: "python:mypkg.actors" names an importable Python module whose actor classes (see
 * docs/modules.md, "Python actors") become classes of this process. xo_module_load hands such a name to the Python
 * embedding, a plugin built where libpython is found (libxoscar_python.so: $XO_PYTHON_PLUGIN, else the build tree's
 * or the install's), which starts an interpreter on first use and calls this entry point, exported as
 * XO_PYTHON_LOADER_SYMBOL:
 *   loads the Python module called name (without the prefix) and describes its classes in *mod_p (static storage
 *   from then on: the plugin never frees it); registers nothing itself. Blocking (imports run the module's code).
 *   On an error returns its status and writes a NUL-terminated text of at most err_size bytes into err. */
#define XO_PYTHON_PREFIX "python:"
#define XO_PYTHON_LOADER_SYMBOL "xo_python_load_v1"
typedef xo_status_t (*xo_python_loader_fn)(const char *name, const xo_module_v1_t **mod_p, char *err,
                                           size_t err_size);

/* Loads the module at path (a file name as dlopen takes it; a name without a slash is searched on the library
 * path; "python:NAME" a Python module, see above) and registers every class it holds. Blocking (dlopen runs the library's constructors); thread-safe
 * (loads are serialised by a lock held across dlopen, so a module's constructor must not call xo_module_load).
 *
 * On XO_OK *mod_p (may be NULL) points to the module's descriptor, valid for the life of the process. Loading a
 * library already loaded (by any path naming the same file) returns the same descriptor and XO_OK.
 *
 * Errors, with a text in xo_last_error() naming the file:
 *   XO_EINVAL    the library cannot be loaded or lacks xo_module_v1 (the text carries dlerror()'s), or its
 *                descriptor is malformed (no name, a NULL class); a Python module that cannot be imported or
 *                holds no actor class (the text ends with the Python exception's last line);
 *   XO_ENOTSUP   "python:" in a build without the Python embedding, or its plugin cannot be loaded (the text
 *                says which);
 *   XO_ENOTSUP   its abi_version is not one this runtime knows (the text names both versions);
 *   XO_ECONFIG   its calls would reach another copy of the runtime than this process's (the text names both);
 *   XO_EEXIST    a class of it has the name of a class already registered (the text names both: the module file
 *                and class, and the module that registered the other, or "the program"), or another module with the
 *                same name is loaded;
 *   others from xo_register_class (a class it refuses, e.g. an unknown class abi_version).
 * On an error no class of the module is registered, except when xo_register_class refuses a class after earlier
 * ones succeeded (those stay registered: there is no unregistering). The library stays mapped in both cases. */
XO_API xo_status_t xo_module_load(const char *path, const xo_module_v1_t **mod_p);

/* The loaded module called name, or NULL. Thread-safe. */
XO_API const xo_module_v1_t *xo_module_loaded(const char *name);

/* Creates an actor of the registered class called class_name (from a module, or registered with
 * xo_register_class), as xo_create_actor does: args is consumed, on XO_OK the caller frees *ref_p with xo_ref_free.
 * XO_ENOCLASS (naming the class) when no class has that name; otherwise xo_create_actor's errors. */
XO_API xo_status_t xo_create_actor_by_name(const char *class_name, xo_args_t *args, const char *address,
                                           const char *uid, xo_ref_t **ref_p);

#ifdef __cplusplus
}
#endif
#endif
