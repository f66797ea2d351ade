#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

const char *xo_status_name(xo_status_t st)
{
    switch (st) {
#define XO_NAME_CASE_(name, value, msg) \
    case XO_##name:                     \
        return "XO_" #name;
        XO_STATUS_MAP(XO_NAME_CASE_)
#undef XO_NAME_CASE_
    }
    return "XO_UNKNOWN";
}

const char *xo_strerror(xo_status_t st)
{
    switch (st) {
#define XO_MSG_CASE_(name, value, msg) \
    case XO_##name:                    \
        return msg;
        XO_STATUS_MAP(XO_MSG_CASE_)
#undef XO_MSG_CASE_
    }
    return "unknown status";
}

/* The last error lives per thread, unless a fiber running an actor activation has bound its own buffer: a method that
 * waits on another actor may be suspended between a failing call and reading the text, and another activation on the
 * same thread must not overwrite it meanwhile. */
static _Thread_local char thread_error[XO_ERROR_TEXT_MAX];
static _Thread_local char *bound_error;

static char *error_buf(void) { return bound_error ? bound_error : thread_error; }

void xo__error_bind(char *buf) { bound_error = buf; }

const char *xo_last_error(void) { return error_buf(); }

void xo__error_clear(void) { error_buf()[0] = '\0'; }

char *xo__error_text_vdup(const char *fmt, va_list ap)
{
    char *text = malloc(XO_ERROR_TEXT_MAX);
    if (text) vsnprintf(text, XO_ERROR_TEXT_MAX, fmt, ap);
    return text;
}

/* Formatted into a copy first: the arguments may point into the buffer being written, as in
 * `xo__error_set(st, "wrapped: %s", xo_last_error())`, and vsnprintf from a buffer into itself is undefined (it gave
 * "wrapped: wrapped: wrapped"). */
xo_status_t xo__error_set(xo_status_t st, const char *fmt, ...)
{
    char text[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(error_buf(), text, strlen(text) + 1);
    return st;
}

xo_status_t xo__error_prefix(xo_status_t st, const char *fmt, ...)
{
    char text[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    const char *cause = error_buf()[0] ? error_buf() : xo_strerror(st);
    size_t at = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    for (const char *c = ": "; *c && at < sizeof text - 1;) text[at++] = *c++;
    for (const char *c = cause; *c && at < sizeof text - 1;) text[at++] = *c++;
    text[at] = '\0';
    memcpy(error_buf(), text, at + 1);
    return st;
}

xo_status_t xo__error_set_text(xo_status_t st, const char *text, size_t len)
{
    char *buf = error_buf();
    if (len >= XO_ERROR_TEXT_MAX) len = XO_ERROR_TEXT_MAX - 1;
    memmove(buf, text, len); /* text may be the buffer itself (xo_last_error()) */
    buf[len] = '\0';
    return st;
}
