/* Xoscar-C status codes: one list, expanded into the enum, its names and its messages.
 *
 * Every function of the public API that can fail returns an xo_status_t. XO_OK is zero, XO_INPROGRESS is the only
 * positive value, errors are negative. The error ranges say how far a failure reaches: a call (the method or its
 * arguments), an actor, a peer (a channel or a remote pool), or this process. */
#ifndef XOSCAR_STATUS_H
#define XOSCAR_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define XO_API __declspec(dllexport)
#else
#define XO_API __attribute__((visibility("default")))
#endif

/* XX(name, value, message). Keep values stable: they travel on the wire in replies. */
#define XO_STATUS_MAP(XX)                                                                           \
    XX(OK, 0, "success")                                                                            \
    XX(INPROGRESS, 1, "operation in progress")                                                      \
    /* call-level errors: the call failed, the actor and the pool are fine */                       \
    XX(EINVAL, -1, "invalid argument")                                                              \
    XX(EBADARGS, -2, "bad method arguments")                                                        \
    XX(ENOMETHOD, -3, "no such method")                                                             \
    XX(EMETHOD, -4, "method failed")                                                                \
    XX(ETIMEDOUT, -5, "call timed out")                                                             \
    XX(ECANCELED, -6, "call cancelled")                                                             \
    XX(EDEADLK, -7, "call cycle would deadlock")                                                    \
    XX(EBATCH, -8, "bad batch")                                                                     \
    XX(EMSGSIZE, -9, "message too large")                                                           \
    XX(ENOTSUP, -10, "operation not supported")                                                     \
    XX(EAGAIN, -11, "resource temporarily unavailable")                                             \
    /* actor-level errors */                                                                        \
    XX(ENOACTOR, -20, "no such actor")                                                              \
    XX(EEXIST, -21, "actor already exists")                                                         \
    XX(ENOCLASS, -22, "no such actor class")                                                        \
    XX(EHOOK, -23, "actor lifecycle hook failed")                                                   \
    XX(ENOIDLESLOT, -24, "no idle slot for the actor")                                              \
    XX(ENOSLOT, -25, "no pool fits the actor")                                                      \
    XX(ERECOVERING, -26, "actor is being re-created after its pool restarted")                      \
    /* peer-level errors: a channel or a remote pool */                                             \
    XX(EUNREACHABLE, -40, "no transport reaches the address")                                       \
    XX(EREFUSED, -41, "connection refused")                                                         \
    XX(ECLOSED, -42, "channel or pool closed")                                                      \
    XX(EPOOLDIED, -43, "pool died")                                                                 \
    XX(EPROTO, -44, "malformed message")                                                            \
    XX(EAUTH, -45, "authentication failed")                                                         \
    /* process-level errors */                                                                      \
    XX(ENOMEM, -60, "out of memory")                                                                \
    XX(ESYS, -61, "system call failed")                                                             \
    XX(ECONFIG, -62, "bad configuration")                                                           \
    XX(EDEVICE, -63, "device error")

typedef enum xo_status {
#define XO_STATUS_ENUM_(name, value, msg) XO_##name = (value),
    XO_STATUS_MAP(XO_STATUS_ENUM_)
#undef XO_STATUS_ENUM_
} xo_status_t;

/* "XO_ETIMEDOUT" for XO_ETIMEDOUT; "XO_UNKNOWN" for a value not in the list. Never NULL, static storage. */
XO_API const char *xo_status_name(xo_status_t st);

/* "call timed out" for XO_ETIMEDOUT; "unknown status" for a value not in the list. Never NULL, static storage. */
XO_API const char *xo_strerror(xo_status_t st);

/* The text of the last error set on this thread (or on this actor activation, inside a method), for example the
 * remote method's own message. Empty string when there is none. Valid until the next failing call on this
 * thread or activation; never NULL. */
XO_API const char *xo_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
