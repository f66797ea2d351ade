/* Logging to stderr with a level, for every module. Errors are logged once, where they are decided. */
#ifndef XO_BASE_LOG_H
#define XO_BASE_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum xo_log_level { XO_LOG_ERROR = 0, XO_LOG_WARN, XO_LOG_INFO, XO_LOG_DEBUG, XO_LOG_TRACE } xo_log_level_t;

/* The threshold, read once from XO_LOG_LEVEL (error|warn|info|debug|trace, default warn) and settable. */
xo_log_level_t xo__log_threshold(void);
void xo__log_set_threshold(xo_log_level_t level);

/* Thread-safe; one line per call, prefixed with the level, pid and thread name. */
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
