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

xo_status_t xo__error_set(xo_status_t st, const char *fmt, ...)
{
    char *buf = error_buf();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, XO_ERROR_TEXT_MAX, fmt, ap);
    va_end(ap);
    return st;
}

xo_status_t xo__error_set_text(xo_status_t st, const char *text, size_t len)
{
    char *buf = error_buf();
    if (len >= XO_ERROR_TEXT_MAX) len = XO_ERROR_TEXT_MAX - 1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return st;
}
