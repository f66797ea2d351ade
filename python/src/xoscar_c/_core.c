/* xoscar_c._core: the CPython binding of libxoscar.
 *
 * Values: Python objects are packed straight into the call's msgpack arguments (no msgpack module): None, bool,
 * int (int64/uint64), float, str, bytes and anything exporting a contiguous buffer (bytearray, memoryview, numpy
 * arrays) as bin, read in place through the buffer protocol; list and tuple as arrays; dict as maps. Replies come
 * back as None, bool, int, float, str, bytes, list, dict.
 *
 * Threads: every libxoscar call that may wait runs with the GIL released. Replies of asynchronous sends never touch
 * Python on the runtime's threads: the future's completion callback (xo_future_on_done) pushes the Call onto its
 * Completion's lock-free stack and, when the stack was empty, writes the Completion's eventfd; the event loop reads
 * that fd (loop.add_reader) and, on its own thread with the GIL, completes the asyncio futures (Completion.drain).
 *
 * Errors: every failure becomes the exception the Python layer's factory builds from (status, name, text); see
 * xoscar_c/errors.py.
 *
 * Inside a pool (XO_PY_EMBEDDED: this file is also compiled into python/embed, the pool's Python embedding, and
 * bound there to the pool's own runtime): a call made in an actor method (in_method()) waits with xo_future_wait,
 * which suspends the method's fiber, so no asyncio loop is involved. Pending is the awaitable of such a call: the
 * call is sent when it is made and awaiting it waits. The GIL is released around every wait, and the embedding gives
 * each activation its own thread state, so a suspended method's frames are never touched by the next one. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <xoscar/host.h>
#include <xoscar/xoscar.h>

#include "_core.h"

#define MAX_DEPTH 64

static PyObject *error_factory; /* callable(status, name, text) -> exception instance; set by init() */
static PyObject *str_set_result, *str_set_exception, *str_done;

/* ---- errors ------------------------------------------------------------------------------------------------- */

/* A new reference to the exception for (st, text), or NULL with the factory's own exception set. */
PyObject *xo_py_make_error(xo_status_t st, const char *text)
{
    if (!error_factory) {
        PyErr_SetString(PyExc_RuntimeError, "xoscar_c._core.init was not called");
        return NULL;
    }
    return PyObject_CallFunction(error_factory, "iss", (int)st, xo_status_name(st), text && text[0] ? text : xo_strerror(st));
}

/* Raises the exception for st with this thread's last error text; returns NULL for `return raise_status(st);`. */
static PyObject *raise_status(xo_status_t st)
{
    PyObject *exc = xo_py_make_error(st, xo_last_error());
    if (!exc) return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* ---- Python -> msgpack -------------------------------------------------------------------------------------- */

int xo_py_pack(msgpack_packer *pk, PyObject *o, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: value nested deeper than 64 levels");
        return -1;
    }
    if (o == Py_None) return msgpack_pack_nil(pk), 0;
    if (o == Py_True) return msgpack_pack_true(pk), 0;
    if (o == Py_False) return msgpack_pack_false(pk), 0;
    if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow == 0) {
            if (v == -1 && PyErr_Occurred()) return -1;
            return msgpack_pack_int64(pk, v), 0;
        }
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (!PyErr_Occurred()) return msgpack_pack_uint64(pk, u), 0;
        }
        PyErr_Clear();
        PyErr_SetString(PyExc_OverflowError, "xoscar_c: int does not fit in 64 bits (msgpack's range)");
        return -1;
    }
    if (PyFloat_Check(o)) return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)), 0;
    if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(o, &len);
        if (!s) return -1;
        msgpack_pack_str(pk, (size_t)len);
        return msgpack_pack_str_body(pk, s, (size_t)len), 0;
    }
    if (PyBytes_Check(o)) {
        msgpack_pack_bin(pk, (size_t)PyBytes_GET_SIZE(o));
        return msgpack_pack_bin_body(pk, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o)), 0;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject *seq = o;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if ((uint64_t)n > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "xoscar_c: sequence too long for msgpack");
            return -1;
        }
        msgpack_pack_array(pk, (size_t)n);
        for (Py_ssize_t i = 0; i < n; i++) {
            /* a list may be changed by another thread only with the GIL, which we hold throughout */
            if (xo_py_pack(pk, PySequence_Fast_GET_ITEM(seq, i), depth + 1) < 0) return -1;
        }
        return 0;
    }
    if (PyDict_Check(o)) {
        msgpack_pack_map(pk, (size_t)PyDict_GET_SIZE(o));
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (xo_py_pack(pk, k, depth + 1) < 0 || xo_py_pack(pk, v, depth + 1) < 0) return -1;
        }
        return 0;
    }
    if (PyObject_CheckBuffer(o)) {
        Py_buffer view;
        if (PyObject_GetBuffer(o, &view, PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "xoscar_c: a %.100s argument must be C-contiguous to travel as bytes",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        msgpack_pack_bin(pk, (size_t)view.len);
        msgpack_pack_bin_body(pk, view.buf, (size_t)view.len); /* the one copy: into the message */
        PyBuffer_Release(&view);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "xoscar_c: cannot send a %.100s (msgpack values only: None, bool, int, float, "
                 "str, bytes-like, list, tuple, dict)", Py_TYPE(o)->tp_name);
    return -1;
}

/* New xo_args_t (caller owns) holding the items of the tuple or list args; NULL with an exception set. */
static xo_args_t *pack_args(PyObject *args)
{
    if (!PyTuple_Check(args) && !PyList_Check(args)) {
        PyErr_SetString(PyExc_TypeError, "xoscar_c: arguments must be a tuple or a list");
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(args);
    xo_args_t *a = xo_args_new((uint32_t)n);
    if (!a) return (xo_args_t *)PyErr_NoMemory();
    msgpack_packer *pk = xo_args_packer(a);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (xo_py_pack(pk, PySequence_Fast_GET_ITEM(args, i), 0) < 0) {
            xo_args_free(a);
            return NULL;
        }
    }
    return a;
}

/* ---- msgpack -> Python -------------------------------------------------------------------------------------- */

PyObject *xo_py_unpack(const msgpack_object *o, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: reply nested deeper than 64 levels");
        return NULL;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN: return PyBool_FromLong(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return PyLong_FromUnsignedLongLong(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return PyLong_FromLongLong(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return PyFloat_FromDouble(o->via.f64);
    /* A C actor may send bytes that are not UTF-8 as a str: they survive as surrogates instead of failing. */
    case MSGPACK_OBJECT_STR: return PyUnicode_DecodeUTF8(o->via.str.ptr, (Py_ssize_t)o->via.str.size, "surrogateescape");
    case MSGPACK_OBJECT_BIN: return PyBytes_FromStringAndSize(o->via.bin.ptr, (Py_ssize_t)o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        PyObject *l = PyList_New((Py_ssize_t)o->via.array.size);
        if (!l) return NULL;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            PyObject *v = xo_py_unpack(&o->via.array.ptr[i], depth + 1);
            if (!v) {
                Py_DECREF(l);
                return NULL;
            }
            PyList_SET_ITEM(l, i, v);
        }
        return l;
    }
    case MSGPACK_OBJECT_MAP: {
        PyObject *d = PyDict_New();
        if (!d) return NULL;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            PyObject *k = xo_py_unpack(&o->via.map.ptr[i].key, depth + 1);
            PyObject *v = k ? xo_py_unpack(&o->via.map.ptr[i].val, depth + 1) : NULL;
            /* a list key is unhashable: the dict refuses it with TypeError, which the caller receives */
            if (!v || PyDict_SetItem(d, k, v) < 0) {
                Py_XDECREF(k);
                Py_XDECREF(v);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
        return d;
    }
    default:
        PyErr_Format(PyExc_TypeError, "xoscar_c: reply holds a msgpack type Python cannot read (%d)", (int)o->type);
        return NULL;
    }
}

/* Converts and frees r (consumed). */
static PyObject *result_to_py(xo_result_t *r)
{
    PyObject *v = r ? xo_py_unpack(xo_result_value(r), 0) : (Py_INCREF(Py_None), Py_None);
    xo_result_free(r);
    return v;
}

static PyObject *batch_pairs(size_t n, const xo_status_t *sts, xo_result_t **rs, char **errs);

/* ---- Ref ---------------------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    xo_ref_t *ref; /* owned */
} RefObject;

static PyTypeObject RefType;

/* Wraps ref (consumed) in a new Ref. */
static PyObject *ref_wrap(xo_ref_t *ref)
{
    RefObject *r = PyObject_New(RefObject, &RefType);
    if (!r) {
        xo_ref_free(ref);
        return NULL;
    }
    r->ref = ref;
    return (PyObject *)r;
}

static void ref_dealloc(RefObject *self)
{
    xo_ref_free(self->ref);
    PyObject_Free(self);
}

static PyObject *ref_get_address(RefObject *self, void *c) { return PyUnicode_FromString(xo_ref_address(self->ref)); }
static PyObject *ref_get_uid(RefObject *self, void *c) { return PyUnicode_FromString(xo_ref_uid(self->ref)); }

static int64_t timeout_ms_of(PyObject *t)
{
    if (!t || t == Py_None) return XO_FOREVER;
    double s = PyFloat_AsDouble(t);
    if (s == -1.0 && PyErr_Occurred()) return INT64_MIN;
    if (s < 0) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: timeout must be >= 0 seconds or None");
        return INT64_MIN;
    }
    return (int64_t)(s * 1000.0);
}

/* call(method, args, timeout=None): waits for the reply with the GIL released. */
static PyObject *ref_call(RefObject *self, PyObject *a)
{
    const char *method;
    PyObject *args, *timeout = Py_None;
    if (!PyArg_ParseTuple(a, "sO|O", &method, &args, &timeout)) return NULL;
    int64_t tmo = timeout_ms_of(timeout);
    if (tmo == INT64_MIN) return NULL;
    xo_args_t *xa = pack_args(args);
    if (!xa) return NULL;
    xo_result_t *r = NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_call(self->ref, method, xa, tmo, &r);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    return result_to_py(r);
}

static PyObject *ref_tell(RefObject *self, PyObject *a)
{
    const char *method;
    PyObject *args;
    double delay = 0;
    if (!PyArg_ParseTuple(a, "sO|d", &method, &args, &delay)) return NULL;
    if (delay < 0) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: delay must be >= 0 seconds");
        return NULL;
    }
    xo_args_t *xa = pack_args(args);
    if (!xa) return NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS /* the first message to a pool connects to it */
    st = delay > 0 ? xo_tell_delay(self->ref, method, xa, (int64_t)(delay * 1000.0)) : xo_tell(self->ref, method, xa);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    Py_RETURN_NONE;
}

/* batch(method, [args, ...], timeout=None): one message; returns [(ok, value_or_exception), ...]. */
static PyObject *ref_batch(RefObject *self, PyObject *a)
{
    const char *method;
    PyObject *calls, *timeout = Py_None;
    if (!PyArg_ParseTuple(a, "sO!|O", &method, &PyList_Type, &calls, &timeout)) return NULL;
    int64_t tmo = timeout_ms_of(timeout);
    if (tmo == INT64_MIN) return NULL;
    size_t n = (size_t)PyList_GET_SIZE(calls);
    if (n == 0) return PyList_New(0);
    xo_delayed_t **ds = PyMem_Calloc(n, sizeof *ds);
    xo_status_t *sts = PyMem_Calloc(n, sizeof *sts);
    xo_result_t **rs = PyMem_Calloc(n, sizeof *rs);
    char **errs = PyMem_Calloc(n, sizeof *errs);
    PyObject *out = NULL;
    if (!ds || !sts || !rs || !errs) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        xo_args_t *xa = pack_args(PyList_GET_ITEM(calls, i));
        if (!xa || !(ds[i] = xo_delay(method, xa))) {
            if (xa && !ds[i]) PyErr_NoMemory();
            for (size_t j = 0; j < i; j++) xo_delayed_free(ds[j]);
            goto done;
        }
    }
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_batch(self->ref, ds, n, tmo, sts, rs, errs); /* consumes ds[*] */
    Py_END_ALLOW_THREADS
    if (st != XO_OK) {
        raise_status(st);
        goto done;
    }
    out = batch_pairs(n, sts, rs, errs);
done:
    PyMem_Free(ds);
    PyMem_Free(sts);
    PyMem_Free(rs);
    PyMem_Free(errs);
    return out;
}

/* The [(ok, value_or_exception), ...] of a batch's results; consumes rs[*] and errs[*] whatever happens. */
static PyObject *batch_pairs(size_t n, const xo_status_t *sts, xo_result_t **rs, char **errs)
{
    PyObject *out = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; out && i < n; i++) {
        PyObject *v = sts[i] == XO_OK ? result_to_py(rs[i]) : xo_py_make_error(sts[i], errs[i]);
        rs[i] = NULL;
        PyObject *item = v ? Py_BuildValue("(ON)", sts[i] == XO_OK ? Py_True : Py_False, v) : NULL;
        if (!item) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, item);
    }
    for (size_t i = 0; i < n; i++) {
        xo_result_free(rs[i]);
        free(errs[i]);
    }
    return out;
}

/* ---- Completion and Call: asynchronous replies -------------------------------------------------------------- */

typedef struct CallObject CallObject;

typedef struct {
    PyObject_HEAD
    int fd;                        /* eventfd the event loop reads */
    _Atomic(CallObject *) head;    /* done calls, newest first; each holds a reference taken at send */
    Py_ssize_t pending;            /* calls sent and not yet drained (touched with the GIL only) */
} CompletionObject;

struct CallObject {
    PyObject_HEAD
    xo_future_t *f;         /* owned: the caller's hold */
    PyObject *pyfut;        /* the asyncio future to complete */
    CompletionObject *comp; /* owned reference */
    CallObject *next;       /* link in comp->head, written by the completing thread */
    size_t n_batch;         /* > 0: a batch of that many calls (xo_batch_send), answered as [(ok, value), ...] */
};

static PyTypeObject CompletionType, CallType;

static PyObject *completion_new(PyTypeObject *t, PyObject *a, PyObject *k)
{
    CompletionObject *c = (CompletionObject *)t->tp_alloc(t, 0);
    if (!c) return NULL;
    c->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->fd < 0) {
        Py_DECREF(c);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    atomic_init(&c->head, NULL);
    return (PyObject *)c;
}

static void completion_dealloc(CompletionObject *self)
{
    /* Only reached with no call pending: each pending call holds a reference. */
    if (self->fd >= 0) close(self->fd);
    Py_TYPE(self)->tp_free(self);
}

/* The completion callback: runs on whichever runtime thread completes the future, without the GIL. It only links
 * the call into the stack and rings the loop; the call stays alive through the reference taken at send. */
static void call_done(xo_future_t *f, void *arg)
{
    (void)f;
    CallObject *c = arg;
    CompletionObject *q = c->comp;
    CallObject *head = atomic_load_explicit(&q->head, memory_order_relaxed);
    do {
        c->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&q->head, &head, c, memory_order_release, memory_order_relaxed));
    if (!head) {
        uint64_t one = 1;
        /* Fails only when the counter would overflow, i.e. the loop has a wake-up pending already. */
        ssize_t w = write(q->fd, &one, sizeof one);
        (void)w;
    }
}

/* drain(): on the loop's thread. Completes the asyncio futures of every call that is done, in completion order. */
static PyObject *completion_drain(CompletionObject *self, PyObject *unused)
{
    uint64_t v;
    /* Read first, then take the stack: a call pushed after the exchange finds it empty and rings again. */
    ssize_t r = read(self->fd, &v, sizeof v);
    (void)r;
    CallObject *c = atomic_exchange_explicit(&self->head, NULL, memory_order_acquire);
    CallObject *fifo = NULL;
    while (c) {
        CallObject *next = c->next;
        c->next = fifo;
        fifo = c;
        c = next;
    }
    while (fifo) {
        c = fifo;
        fifo = c->next;
        c->next = NULL;
        PyObject *done = PyObject_CallMethodNoArgs(c->pyfut, str_done);
        int is_done = done ? PyObject_IsTrue(done) : -1;
        Py_XDECREF(done);
        if (is_done == 0) {
            xo_result_t *res = NULL;
            xo_status_t st;
            PyObject *val = NULL, *ret = NULL;
            if (c->n_batch) {
                size_t n = c->n_batch;
                xo_status_t *sts = PyMem_Calloc(n, sizeof *sts);
                xo_result_t **rs = PyMem_Calloc(n, sizeof *rs);
                char **errs = PyMem_Calloc(n, sizeof *errs);
                if (!sts || !rs || !errs) {
                    st = XO_ENOMEM;
                    PyErr_NoMemory();
                } else {
                    st = xo_future_batch_results(c->f, 0, n, sts, rs, errs);
                    if (st == XO_OK) val = batch_pairs(n, sts, rs, errs);
                }
                PyMem_Free(sts);
                PyMem_Free(rs);
                PyMem_Free(errs);
                if (val) ret = PyObject_CallMethodOneArg(c->pyfut, str_set_result, val);
                else if (st != XO_OK && st != XO_ENOMEM) {
                    val = xo_py_make_error(st, xo_last_error());
                    if (val) ret = PyObject_CallMethodOneArg(c->pyfut, str_set_exception, val);
                }
            } else if ((st = xo_future_wait(c->f, 0, &res)) == XO_OK) {
                val = result_to_py(res);
                if (val) ret = PyObject_CallMethodOneArg(c->pyfut, str_set_result, val);
            } else {
                val = xo_py_make_error(st, xo_last_error());
                if (val) ret = PyObject_CallMethodOneArg(c->pyfut, str_set_exception, val);
            }
            if (!val) { /* the reply could not be converted: the awaiting coroutine gets that error */
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyErr_NormalizeException(&type, &value, &tb);
                if (value) ret = PyObject_CallMethodOneArg(c->pyfut, str_set_exception, value);
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(tb);
            }
            Py_XDECREF(val);
            if (!ret) PyErr_WriteUnraisable(c->pyfut);
            Py_XDECREF(ret);
        } else if (is_done < 0) {
            PyErr_WriteUnraisable(c->pyfut);
        }
        self->pending--;
        Py_DECREF(c); /* the reference the send took for the completion callback */
    }
    Py_RETURN_NONE;
}

static PyObject *completion_get_fd(CompletionObject *self, void *c) { return PyLong_FromLong(self->fd); }
static PyObject *completion_get_pending(CompletionObject *self, void *c) { return PyLong_FromSsize_t(self->pending); }

static void call_dealloc(CallObject *self)
{
    xo_future_free(self->f);
    Py_XDECREF(self->pyfut);
    Py_XDECREF(self->comp);
    PyObject_Free(self);
}

static PyObject *call_cancel(CallObject *self, PyObject *unused)
{
    xo_future_cancel(self->f);
    Py_RETURN_NONE;
}

static PyObject *call_track(xo_future_t *f, CompletionObject *comp, PyObject *pyfut, size_t n_batch);

/* send(method, args, completion, future): returns a Call; the future is completed by completion.drain(). */
static PyObject *ref_send(RefObject *self, PyObject *a)
{
    const char *method;
    PyObject *args, *pyfut;
    CompletionObject *comp;
    if (!PyArg_ParseTuple(a, "sOO!O", &method, &args, &CompletionType, &comp, &pyfut)) return NULL;
    xo_args_t *xa = pack_args(args);
    if (!xa) return NULL;
    xo_future_t *f = NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS /* the first message to a pool connects to it */
    st = xo_send(self->ref, method, xa, &f);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    return call_track(f, comp, pyfut, 0);
}

/* A new Call owning f (consumed) that completes pyfut through comp; n_batch as in CallObject. */
static PyObject *call_track(xo_future_t *f, CompletionObject *comp, PyObject *pyfut, size_t n_batch)
{
    xo_status_t st;
    CallObject *c = PyObject_New(CallObject, &CallType);
    if (!c) {
        xo_future_cancel(f);
        xo_future_free(f);
        return NULL;
    }
    c->f = f;
    c->n_batch = n_batch;
    comp->pending++;
    Py_INCREF(pyfut);
    c->pyfut = pyfut;
    Py_INCREF(comp);
    c->comp = comp;
    c->next = NULL;
    Py_INCREF(c); /* owned by the completion callback until drain() */
    st = xo_future_on_done(f, call_done, c);
    if (st != XO_OK) { /* cannot happen for a fresh future; never leave a reference behind */
        comp->pending--;
        Py_DECREF(c);
        Py_DECREF(c);
        return raise_status(st);
    }
    return (PyObject *)c;
}

/* batch_send(method, [args, ...], completion, future): one message, without waiting; the future gets
 * [(ok, value_or_exception), ...]. The list must not be empty. */
static PyObject *ref_batch_send(RefObject *self, PyObject *a)
{
    const char *method;
    PyObject *calls, *pyfut;
    CompletionObject *comp;
    if (!PyArg_ParseTuple(a, "sO!O!O", &method, &PyList_Type, &calls, &CompletionType, &comp, &pyfut)) return NULL;
    size_t n = (size_t)PyList_GET_SIZE(calls);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: batch_send needs at least one call");
        return NULL;
    }
    xo_delayed_t **ds = PyMem_Calloc(n, sizeof *ds);
    if (!ds) return PyErr_NoMemory();
    for (size_t i = 0; i < n; i++) {
        xo_args_t *xa = pack_args(PyList_GET_ITEM(calls, i));
        if (!xa || !(ds[i] = xo_delay(method, xa))) {
            if (xa && !ds[i]) PyErr_NoMemory();
            for (size_t j = 0; j < i; j++) xo_delayed_free(ds[j]);
            PyMem_Free(ds);
            return NULL;
        }
    }
    xo_future_t *f = NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_batch_send(self->ref, ds, n, &f); /* consumes ds[*] */
    Py_END_ALLOW_THREADS
    PyMem_Free(ds);
    if (st != XO_OK) return raise_status(st);
    return call_track(f, comp, pyfut, n);
}

/* ---- Pending: an actor call awaited inside a pool method --------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    xo_future_t *f; /* owned; NULL once awaited */
} PendingObject;

static PyTypeObject PendingType;

/* pending(method, args) -> Pending: sends the call now (xo_send); awaiting the Pending waits for its reply. */
static PyObject *ref_pending(RefObject *self, PyObject *const *a, Py_ssize_t n)
{
    if (n != 2 || !PyUnicode_Check(a[0])) {
        PyErr_SetString(PyExc_TypeError, "pending(method, args)");
        return NULL;
    }
    const char *method = PyUnicode_AsUTF8(a[0]);
    if (!method) return NULL;
    xo_args_t *xa = pack_args(a[1]);
    if (!xa) return NULL;
    xo_future_t *f = NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS /* the first message to a pool connects to it, which may wait */
    st = xo_send(self->ref, method, xa, &f);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    PendingObject *p = PyObject_New(PendingObject, &PendingType);
    if (!p) {
        xo_future_cancel(f);
        xo_future_free(f);
        return NULL;
    }
    p->f = f;
    return (PyObject *)p;
}

/* Waits for the reply (suspending the method's fiber inside a pool, blocking a plain thread), GIL released; the
 * value, or NULL with the call's exception set. Consumes the future. */
static PyObject *pending_wait(PendingObject *self)
{
    if (!self->f) {
        PyErr_SetString(PyExc_RuntimeError, "xoscar_c: this call was awaited already");
        return NULL;
    }
    xo_result_t *r = NULL;
    xo_status_t st;
    xo_future_t *f = self->f;
    self->f = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = xo_future_wait(f, XO_FOREVER, &r);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) {
        raise_status(st); /* xo_last_error() is still this activation's: read before the future goes */
        xo_future_free(f);
        return NULL;
    }
    xo_future_free(f);
    return result_to_py(r);
}

/* `await pending`: __await__ returns the Pending itself, an iterator that never yields: its first step waits and
 * ends the iteration with the reply (StopIteration(value)), so the awaiting coroutine resumes with it at once. */
static PyObject *pending_await(PyObject *self) { return Py_NewRef(self); }

static PyObject *pending_next(PendingObject *self)
{
    PyObject *v = pending_wait(self);
    if (!v) return NULL;
    /* StopIteration(v) built explicitly: PyErr_SetObject would unpack a tuple value into arguments */
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, v);
    Py_DECREF(v);
    if (!stop) return NULL;
    PyErr_SetObject(PyExc_StopIteration, stop);
    Py_DECREF(stop);
    return NULL;
}

static PyObject *pending_result(PendingObject *self, PyObject *unused) { return pending_wait(self); }

static PyObject *pending_cancel(PendingObject *self, PyObject *unused)
{
    if (self->f) xo_future_cancel(self->f);
    Py_RETURN_NONE;
}

static void pending_dealloc(PendingObject *self)
{
    xo_future_free(self->f); /* not awaited: the reply is dropped (the call is not cancelled) */
    PyObject_Free(self);
}

/* ---- inside a method ---------------------------------------------------------------------------------------- */

static PyObject *mod_in_method(PyObject *m, PyObject *unused) { return PyBool_FromLong(xo_ctx_current() != NULL); }

static xo_ctx_t *need_ctx(void)
{
    xo_ctx_t *ctx = xo_ctx_current();
    if (!ctx) PyErr_SetString(PyExc_RuntimeError, "xoscar_c: only inside an actor's method or hook");
    return ctx;
}

static PyObject *mod_ctx_uid(PyObject *m, PyObject *unused)
{
    xo_ctx_t *ctx = need_ctx();
    return ctx ? PyUnicode_FromString(xo_ctx_uid(ctx)) : NULL;
}

static PyObject *mod_ctx_address(PyObject *m, PyObject *unused)
{
    xo_ctx_t *ctx = need_ctx();
    return ctx ? PyUnicode_FromString(xo_ctx_address(ctx)) : NULL;
}

static PyObject *mod_self_ref(PyObject *m, PyObject *unused)
{
    xo_ctx_t *ctx = need_ctx();
    if (!ctx) return NULL;
    xo_ref_t *ref = xo_ctx_self(ctx);
    return ref ? ref_wrap(ref) : PyErr_NoMemory();
}

/* sleep(seconds): xo_sleep_ms with the GIL released (inside a method it suspends the method only). */
static PyObject *mod_sleep(PyObject *m, PyObject *arg)
{
    double s = PyFloat_AsDouble(arg);
    if (s == -1.0 && PyErr_Occurred()) return NULL;
    if (s < 0) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: sleep takes seconds >= 0");
        return NULL;
    }
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_sleep_ms((int64_t)(s * 1000.0));
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    Py_RETURN_NONE;
}

/* ---- module functions --------------------------------------------------------------------------------------- */

static PyObject *mod_init(PyObject *m, PyObject *factory)
{
    if (!PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "init needs a callable error factory");
        return NULL;
    }
    Py_XSETREF(error_factory, Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyObject *mod_set_secret(PyObject *m, PyObject *a)
{
    const char *s;
    if (!PyArg_ParseTuple(a, "s", &s)) return NULL;
    xo_set_secret(s);
    Py_RETURN_NONE;
}

static PyObject *mod_actor_ref(PyObject *m, PyObject *a)
{
    const char *address, *uid;
    if (!PyArg_ParseTuple(a, "ss", &address, &uid)) return NULL;
    xo_ref_t *ref = NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_actor_ref(address, uid, &ref);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    return ref_wrap(ref);
}

/* create_actor(class_name, args, main_address, uid, strategy, address, process_index, label, mark, device_mem) */
static PyObject *mod_create_actor(PyObject *m, PyObject *a)
{
    const char *cls, *main_address, *uid = NULL, *strategy = NULL, *address = NULL, *label = NULL, *mark = NULL;
    PyObject *args;
    Py_ssize_t process_index = 0;
    unsigned long long device_mem = 0;
    if (!PyArg_ParseTuple(a, "sOs|zzznzzK", &cls, &args, &main_address, &uid, &strategy, &address, &process_index,
                          &label, &mark, &device_mem))
        return NULL;
    if (process_index < 0) {
        PyErr_SetString(PyExc_ValueError, "xoscar_c: process_index must be >= 0");
        return NULL;
    }
    xo_args_t *xa = pack_args(args);
    if (!xa) return NULL;
    xo_placement_t pl = {.strategy = strategy, .address = address, .process_index = (size_t)process_index,
                         .label = label, .mark = mark, .device_mem = device_mem};
    xo_ref_t *ref = NULL;
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_create_actor_placed(cls, xa, main_address, uid, &pl, &ref);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    return ref_wrap(ref);
}

static PyObject *mod_destroy_actor(PyObject *m, PyObject *r)
{
    if (!PyObject_TypeCheck(r, &RefType)) {
        PyErr_SetString(PyExc_TypeError, "destroy_actor needs a Ref");
        return NULL;
    }
    xo_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = xo_destroy_actor(((RefObject *)r)->ref);
    Py_END_ALLOW_THREADS
    if (st != XO_OK) return raise_status(st);
    Py_RETURN_NONE;
}

static PyObject *mod_has_actor(PyObject *m, PyObject *r)
{
    if (!PyObject_TypeCheck(r, &RefType)) {
        PyErr_SetString(PyExc_TypeError, "has_actor needs a Ref");
        return NULL;
    }
    bool has;
    Py_BEGIN_ALLOW_THREADS
    has = xo_has_actor(((RefObject *)r)->ref);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(has);
}

/* poll_replies(spin_us) -> bool: xo_poll_replies with the GIL released. */
static PyObject *mod_poll_replies(PyObject *m, PyObject *a)
{
    long long us;
    if (!PyArg_ParseTuple(a, "L", &us)) return NULL;
    bool took;
    Py_BEGIN_ALLOW_THREADS
    took = xo_poll_replies(us);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(took);
}

static PyObject *mod_status_names(PyObject *m, PyObject *unused)
{
    PyObject *d = PyDict_New();
#define XO_PY_STATUS_(name, value, msg)                                                                         \
    if (d) {                                                                                                    \
        PyObject *v = PyLong_FromLong(value);                                                                   \
        if (!v || PyDict_SetItemString(d, "XO_" #name, v) < 0) Py_CLEAR(d);                                     \
        Py_XDECREF(v);                                                                                          \
    }
    XO_STATUS_MAP(XO_PY_STATUS_)
#undef XO_PY_STATUS_
    return d;
}

/* ---- types and module --------------------------------------------------------------------------------------- */

static PyMethodDef ref_methods[] = {
    {"call", (PyCFunction)ref_call, METH_VARARGS, "call(method, args, timeout=None): blocking call"},
    {"send", (PyCFunction)ref_send, METH_VARARGS, "send(method, args, completion, future) -> Call"},
    {"tell", (PyCFunction)ref_tell, METH_VARARGS, "tell(method, args, delay=0)"},
    {"batch", (PyCFunction)ref_batch, METH_VARARGS, "batch(method, [args...], timeout=None) -> [(ok, value)]"},
    {"batch_send", (PyCFunction)ref_batch_send, METH_VARARGS, "batch_send(method, [args...], completion, future)"},
    {"pending", (PyCFunction)(void (*)(void))ref_pending, METH_FASTCALL, "pending(method, args) -> Pending"},
    {NULL}};
static PyGetSetDef ref_getset[] = {{"address", (getter)ref_get_address}, {"uid", (getter)ref_get_uid}, {NULL}};
static PyTypeObject RefType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "xoscar_c._core.Ref",
    .tp_basicsize = sizeof(RefObject),
    .tp_dealloc = (destructor)ref_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = ref_methods,
    .tp_getset = ref_getset,
};

static PyMethodDef completion_methods[] = {
    {"drain", (PyCFunction)completion_drain, METH_NOARGS, "complete the futures of finished calls"}, {NULL}};
static PyGetSetDef completion_getset[] = {
    {"fd", (getter)completion_get_fd}, {"pending", (getter)completion_get_pending}, {NULL}};
static PyTypeObject CompletionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "xoscar_c._core.Completion",
    .tp_basicsize = sizeof(CompletionObject),
    .tp_dealloc = (destructor)completion_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = completion_new,
    .tp_methods = completion_methods,
    .tp_getset = completion_getset,
};

static PyMethodDef pending_methods[] = {
    {"result", (PyCFunction)pending_result, METH_NOARGS, "wait for the reply (blocking; suspends a method)"},
    {"cancel", (PyCFunction)pending_cancel, METH_NOARGS, "cancel the call"},
    {NULL}};
static PyAsyncMethods pending_async = {.am_await = pending_await};
static PyTypeObject PendingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "xoscar_c._core.Pending",
    .tp_basicsize = sizeof(PendingObject),
    .tp_dealloc = (destructor)pending_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_as_async = &pending_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)pending_next,
    .tp_methods = pending_methods,
};

static PyMethodDef call_methods[] = {{"cancel", (PyCFunction)call_cancel, METH_NOARGS, "cancel the call"}, {NULL}};
static PyTypeObject CallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "xoscar_c._core.Call",
    .tp_basicsize = sizeof(CallObject),
    .tp_dealloc = (destructor)call_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = call_methods,
};

static PyMethodDef mod_methods[] = {
    {"init", mod_init, METH_O, "init(error_factory)"},
    {"set_secret", mod_set_secret, METH_VARARGS, "set_secret(secret)"},
    {"actor_ref", mod_actor_ref, METH_VARARGS, "actor_ref(address, uid) -> Ref (blocking)"},
    {"create_actor", mod_create_actor, METH_VARARGS, "create_actor(...) -> Ref (blocking)"},
    {"destroy_actor", mod_destroy_actor, METH_O, "destroy_actor(ref) (blocking)"},
    {"has_actor", mod_has_actor, METH_O, "has_actor(ref) -> bool (blocking)"},
    {"status_names", mod_status_names, METH_NOARGS, "{name: value} of every status"},
    {"poll_replies", mod_poll_replies, METH_VARARGS, "poll_replies(spin_us) -> bool (GIL released)"},
    {"in_method", mod_in_method, METH_NOARGS, "True inside an actor's method or hook"},
    {"ctx_uid", mod_ctx_uid, METH_NOARGS, "the running actor's uid"},
    {"ctx_address", mod_ctx_address, METH_NOARGS, "the running actor's pool address"},
    {"self_ref", mod_self_ref, METH_NOARGS, "a Ref to the running actor"},
    {"sleep", mod_sleep, METH_O, "sleep(seconds): suspends a method only"},
    {NULL}};

static struct PyModuleDef core_module = {PyModuleDef_HEAD_INIT, "xoscar_c._core", NULL, -1, mod_methods};

PyMODINIT_FUNC PyInit__core(void)
{
    if (PyType_Ready(&RefType) < 0 || PyType_Ready(&CompletionType) < 0 || PyType_Ready(&CallType) < 0 ||
        PyType_Ready(&PendingType) < 0)
        return NULL;
    str_set_result = PyUnicode_InternFromString("set_result");
    str_set_exception = PyUnicode_InternFromString("set_exception");
    str_done = PyUnicode_InternFromString("done");
    if (!str_set_result || !str_set_exception || !str_done) return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Ref", (PyObject *)&RefType) < 0 ||
        PyModule_AddObjectRef(m, "Completion", (PyObject *)&CompletionType) < 0 ||
        PyModule_AddObjectRef(m, "Call", (PyObject *)&CallType) < 0 ||
        PyModule_AddObjectRef(m, "Pending", (PyObject *)&PendingType) < 0 ||
#ifdef XO_PY_EMBEDDED
        PyModule_AddIntConstant(m, "embedded", 1) < 0) {
#else
        PyModule_AddIntConstant(m, "embedded", 0) < 0) {
#endif
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
