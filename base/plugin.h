/* Plugins: the optional hardware backends (the CUDA device backend, the NCCL entry points, the UCX channel), each a
 * shared object of its own that the core loads at run time, on first need, so that libxoscar.so and the programs
 * built on it load on a machine without CUDA, NCCL or UCX and behave there as a build without that backend would.
 * docs/plugins.md describes the search path, the log line and the environment variables.
 *
 * A plugin is libxoscar-<name>.so and exports one data symbol, xo_plugin (XO_PLUGIN_DEFINE), whose first field is
 * the ABI version. The loader checks, in this order: the file exists, dlopen takes it, it has the symbol, the ABI
 * version is this runtime's, the name and kind are the ones asked for, and the layout fingerprint (the sizes of
 * the structures the plugin shares with the core) matches. Only then does it hand the plugin the host table and
 * give its ops to the caller. Plugins are built from the same tree as the core: the ABI number and the fingerprint
 * exist to refuse a plugin of another version or another build (an old install left in the path), not to support
 * third-party ones.
 *
 * What the plugin sees of the core is the host table below, nothing else: it links no object of the core, so that
 * one plugin file serves libxoscar.so, xoscar-pool and the programs linking libxoscar.a alike, and its error texts
 * and log lines are the core's own (base/plugin_side.c gives a plugin the usual xo__error_set and xo_log_*
 * on top of the table). */
#ifndef XO_BASE_PLUGIN_H
#define XO_BASE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump it whenever this header's structures change. */
#define XO_PLUGIN_ABI_VERSION 1u

typedef enum xo__plugin_kind {
    XO_PLUGIN_DEVICE = 1,    /* ops: const xo_device_ops_t * (gpu/device.h) */
    XO_PLUGIN_TRANSPORT = 2, /* ops: const xo_transport_ops_t * (transport/channel.h) */
    XO_PLUGIN_NCCL = 3,      /* ops: const xo__nccl_api_t * (services/nccl/nccl_api.h) */
} xo__plugin_kind_t;

/* What the core lends every plugin, valid for the life of the process. */
typedef struct xo__plugin_host {
    uint32_t abi_version;
    /* Sets the calling thread's (or activation's) error text, as xo__error_set_text does; returns st. */
    xo_status_t (*error_set_text)(xo_status_t st, const char *text, size_t len);
    const char *(*last_error)(void);
    /* The log threshold (an xo_log_level_t) and one log line, as xo__log_write writes it. */
    int (*log_threshold)(void);
    void (*log_text)(int level, const char *file, int line, const char *text);
} xo__plugin_host_t;

/* The descriptor a plugin exports as xo_plugin. */
typedef struct xo__plugin {
    uint32_t abi_version; /* XO_PLUGIN_ABI_VERSION of the tree that built it: read before anything else */
    uint32_t kind;        /* an xo__plugin_kind_t */
    uint32_t layout;      /* the kind's fingerprint, e.g. XO_DEVICE_PLUGIN_LAYOUT */
    const char *name;     /* "cuda": the file is libxoscar-cuda.so */
    /* Called once, after every check passed and before ops is used; host outlives the plugin. */
    void (*attach)(const xo__plugin_host_t *host);
    const void *ops;      /* the kind's table */
} xo__plugin_t;

#define XO_PLUGIN_SYMBOL "xo_plugin"

/* A fingerprint of two structure sizes: a plugin built against another layout of them is refused. */
#define XO_PLUGIN_LAYOUT(a, b) ((uint32_t)(((sizeof(a) & 0xffffu) << 16) | (sizeof(b) & 0xffffu)))

/* Plugin side (base/plugin_side.c, linked into every plugin): keeps host for xo__error_set and xo_log_*. */
void xo__plugin_attach(const xo__plugin_host_t *host);

/* In one source file of a plugin: its descriptor. The plugin's link keeps only this symbol visible
 * (cmake/plugin.map). */
#define XO_PLUGIN_DEFINE(kind_, name_, layout_, ops_)                                                              \
    XO_API extern const xo__plugin_t xo_plugin;                                                                   \
    const xo__plugin_t xo_plugin = {.abi_version = XO_PLUGIN_ABI_VERSION,                                          \
                                    .kind = (kind_),                                                              \
                                    .layout = (layout_),                                                          \
                                    .name = (name_),                                                              \
                                    .attach = xo__plugin_attach,                                                  \
                                    .ops = (ops_)}

/* ---- core side (base/plugin.c) ---- */

/* The ops of plugin name (libxoscar-<name>.so), loaded on the first call for that name and remembered: later calls
 * return the same answer without looking again. NULL when it is disabled (XO_PLUGIN_DISABLE), not found, or refused;
 * either way one log line says so (info when loaded, disabled or not installed; a warning when a file was found but
 * refused, which is a broken install) and xo__plugin_why(name) keeps the reason. without: what the runtime does
 * instead, for that line ("the host device backend only"). Thread-safe; may block in dlopen. */
const void *xo__plugin_load(const char *name, xo__plugin_kind_t kind, uint32_t layout, const char *without);

/* Why plugin name is not loaded ("not installed: libxoscar-cuda.so is in none of ..."), for the error of a user
 * who asks for its backend explicitly; NULL when it is loaded or no load of it was tried. Static storage that
 * lasts the process. */
const char *xo__plugin_why(const char *name);

/* The file plugin name was loaded from, or NULL. Static storage that lasts the process. */
const char *xo__plugin_path(const char *name);

/* The directories searched, in order, ':'-separated, into buf (for messages and `xoscar --version`). */
void xo__plugin_search_path(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
