/* Every plugin of the runtime at once (base/plugin.h), for those who want to know what a process has rather than
 * load each one on first need: `xoscar --version`. */
#ifndef XO_SERVICES_PLUGINS_H
#define XO_SERVICES_PLUGINS_H

#include <stddef.h>

/* The plugin names, in a fixed order ("cuda", "nccl", "ucx"); *n_p gets their number. Static storage. */
const char *const *xo__plugin_names(size_t *n_p);

/* Looks for every plugin now (each logs its line once, as on first need). Thread-safe; may block in dlopen. */
void xo__plugins_load_all(void);

#endif
