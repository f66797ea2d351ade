/* The plugin's side of the host table (base/plugin.h), linked into every plugin and into nothing else: the
 * functions of base/ that backend code calls (xo__error_set, xo_last_error, xo_log_*), here forwarding to the core
 * that loaded the plugin, so that a backend's source is the same whether it is a plugin or not and its error texts
 * and log lines are the core's. A plugin's link keeps these symbols local (cmake/plugin.map): they never stand in
 * for the core's own. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "base/plugin.h"

/* Written once by attach, which the loader calls before the plugin's ops can run; the loader's dlopen and the
 * caller's use of the ops it returned are ordered after it by the loader's lock. */
static const xo__plugin_host_t *host;

void xo__plugin_attach(const xo__plugin_host_t *h) { host = h; }

xo_status_t xo__error_set(xo_status_t st, const char *fmt, ...)
{
    char text[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof text ? sizeof text - 1 : (size_t)n;
    return host->error_set_text(st, text, len);
}

const char *xo_last_error(void) { return host->last_error(); }

xo_log_level_t xo__log_threshold(void) { return (xo_log_level_t)host->log_threshold(); }

void xo__log_write(xo_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    host->log_text((int)level, file, line, text);
}
