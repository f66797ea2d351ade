/* Error text that travels with a status: set where the error is decided, read with xo_last_error(). */
#ifndef XO_BASE_ERROR_H
#define XO_BASE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stdarg.h>
#include <stddef.h>

#include "xoscar/status.h"

#define XO_ERROR_TEXT_MAX 512

/* Sets the calling thread's (or current actor activation's) last error to the formatted text and returns st, so
 * that `return xo__error_set(XO_EINVAL, "bad uid %s", uid);` reads naturally. */
xo_status_t xo__error_set(xo_status_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the current error text: "<formatted>: <current text>" (the status's message when there is none), e.g.
 * `return xo__error_prefix(st, "cannot send to pool %s", address);` after a call that failed with its own text.
 * Returns st. The one safe way to wrap a text; xo__error_set with xo_last_error() as an argument is safe too. */
xo_status_t xo__error_prefix(xo_status_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, with a text of known length that need not be NUL-terminated (e.g. a remote error message). */
xo_status_t xo__error_set_text(xo_status_t st, const char *text, size_t len);

/* A malloc'd copy of the formatted text, at most XO_ERROR_TEXT_MAX bytes with its NUL (an error text that travels
 * with a reply). The caller frees it; NULL when out of memory. */
char *xo__error_text_vdup(const char *fmt, va_list ap);

/* Clears the last error. */
void xo__error_clear(void);

/* Where xo_last_error() reads and xo__error_set() writes: the thread's buffer, or an activation's while a fiber runs
 * one. The scheduler installs the activation's buffer with this; NULL restores the thread's own. */
void xo__error_bind(char *buf);

#ifdef __cplusplus
}
#endif
#endif
