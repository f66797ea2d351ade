/* Logging to stderr (and a file) with a level, for every module. Errors are logged once, where they are decided. */
#ifndef XO_BASE_LOG_H
#define XO_BASE_LOG_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum xo_log_level { XO_LOG_ERROR = 0, XO_LOG_WARN, XO_LOG_INFO, XO_LOG_DEBUG, XO_LOG_TRACE } xo_log_level_t;

/* The threshold, read once from XO_LOG_LEVEL (error|warn|info|debug|trace, default warn) and settable. */
xo_log_level_t xo__log_threshold(void);
void xo__log_set_threshold(xo_log_level_t level);

/* "error", "warn", "info", "debug" or "trace" (any case) into *level_p; false, *level_p untouched, for anything
 * else. */
bool xo__log_parse_level(const char *s, xo_log_level_t *level_p);
/* The level's name as xo__log_parse_level reads it (static storage). */
const char *xo__log_level_name(xo_log_level_t level);

/* The name shown on every line (a pool's address), copied; may be set again while other threads log. */
void xo__log_set_name(const char *name);

/* Makes path this process's log file from now on, as XO_LOG_FILE does at the first line, in place of the one
 * before (lines written meanwhile go to one or the other); NULL or "": none. false (errno set) when it cannot be
 * opened: the process then logs to stderr only. */
bool xo__log_set_file(const char *path);

/* Until called again, every line also goes to fd (a daemon's caller's stderr while the daemon starts: what was
 * chosen or went wrong on the way is seen where `xoscar up` was typed); -1: no more. Takes fd (closed when
 * replaced). */
void xo__log_set_echo(int fd);

/* Thread-safe; one line per call, "[W 2026-12-03T15:49:28.123456Z NAME pid 123 thread file.c:12] text", to stderr
 * and, when XO_LOG_FILE names a file (read at the first line), appended to it as well (once only when stderr is
 * that file). */
void xo__log_write(xo_log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define xo_log(level, ...)                                                                          \
    do {                                                                                            \
        if ((level) <= xo__log_threshold()) xo__log_write((level), __FILE__, __LINE__, __VA_ARGS__);  \
    } while (0)
#define xo_log_error(...) xo_log(XO_LOG_ERROR, __VA_ARGS__)
#define xo_log_warn(...) xo_log(XO_LOG_WARN, __VA_ARGS__)
#define xo_log_info(...) xo_log(XO_LOG_INFO, __VA_ARGS__)
#define xo_log_debug(...) xo_log(XO_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
