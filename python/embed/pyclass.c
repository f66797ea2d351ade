/* C actor classes built at run time from Python classes: each hook and each method of every Python class is one
 * C function here, which finds its Python class through xo_ctx_class (the xo_actor_class_t is the first member of
 * pyclass_t) and its method through xo_ctx_method_index.
 *
 * An activation enters Python (xo_py__enter), converts the msgpack arguments, calls the bound method and, when it
 * returns a coroutine (an `async def` method), drives it to its end here, on the activation's fiber: the coroutine's
 * awaits of actor calls wait inside _core's Pending (xo_future_wait with the GIL released), which suspends only
 * this fiber, so a Python method awaiting another actor leaves the pool's thread to other actors and keeps its
 * call chain (A -> B -> A reentrancy, cancellation down the chain and XO_METHOD_NO_LOCK work as for C methods).
 * Nothing else is awaitable: a coroutine that yields anything but a bare `yield` (asyncio.sleep(0)) gets a
 * RuntimeError thrown in, naming what it awaited.
 *
 * Errors never leave Python as a crash: every exception becomes the call's status and text (xo_py__error). */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_core.h"
#include "embed.h"

typedef struct {
    xo_actor_class_t cls; /* first: xo_ctx_class(ctx) points here */
    PyObject *pycls;      /* strong reference, for the process's life */
    PyObject **names;     /* interned method names, one per cls.methods[i] */
    PyObject **batches;   /* the `<name>_batch` handler's name, or NULL, per method */
    bool post_create, pre_destroy;
} pyclass_t;

static PyObject *str_post_create, *str_pre_destroy, *str_uid, *str_address, *str_throw, *str_value;

static const pyclass_t *class_of(xo_ctx_t *ctx) { return (const pyclass_t *)xo_ctx_class(ctx); }

/* Records the raised exception as the activation's error; returns its status. */
static xo_status_t fail(xo_ctx_t *ctx, const char *cls, const char *what)
{
    char text[400], where[200];
    snprintf(where, sizeof where, "%s.%s", cls, what);
    xo_status_t st = xo_py__error(where, text, sizeof text);
    return xo_ctx_error(ctx, st, "%s", text);
}

/* A new tuple of the values of args (a msgpack array; anything else is no arguments), or NULL with an exception. */
static PyObject *args_tuple(const msgpack_object *args)
{
    uint32_t n = args && args->type == MSGPACK_OBJECT_ARRAY ? args->via.array.size : 0;
    PyObject *t = PyTuple_New(n);
    for (uint32_t i = 0; t && i < n; i++) {
        PyObject *v = xo_py_unpack(&args->via.array.ptr[i], 0);
        if (!v) Py_CLEAR(t);
        else PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* ---- coroutines --------------------------------------------------------------------------------------------- */

/* Throws exc (consumed) into coro; as PyIter_Send, with *y the next yielded value or the returned one. */
static PySendResult throw_into(PyObject *coro, PyObject *exc, PyObject **y)
{
    *y = PyObject_CallMethodOneArg(coro, str_throw, exc);
    Py_DECREF(exc);
    if (*y) return PYGEN_NEXT;
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return PYGEN_ERROR;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    *y = v ? PyObject_GetAttr(v, str_value) : Py_NewRef(Py_None);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return *y ? PYGEN_RETURN : PYGEN_ERROR;
}

/* Runs the coroutine coro (consumed) to its end on this fiber; its value, or NULL with its exception set. */
static PyObject *drive(PyObject *coro)
{
    PyObject *exc = NULL;
    for (;;) {
        PyObject *y = NULL;
        PySendResult r = exc ? throw_into(coro, exc, &y) : PyIter_Send(coro, Py_None, &y);
        exc = NULL;
        if (r != PYGEN_NEXT) {
            Py_DECREF(coro);
            return r == PYGEN_RETURN ? y : NULL;
        }
        if (y == Py_None) { /* a bare yield gives way to others (asyncio.sleep(0)): here it just resumes */
            Py_DECREF(y);
            continue;
        }
        PyErr_Format(PyExc_RuntimeError,
                     "xoscar_c: a Python actor awaited %.200R: inside a pool only actor calls, xoscar_c.sleep and "
                     "xoscar_c.gather can be awaited (asyncio's primitives need an event loop, which pool methods "
                     "do not run in)",
                     y);
        Py_DECREF(y);
        PyObject *t, *tb;
        PyErr_Fetch(&t, &exc, &tb);
        PyErr_NormalizeException(&t, &exc, &tb);
        Py_XDECREF(t);
        Py_XDECREF(tb);
        if (!exc) {
            Py_DECREF(coro);
            return NULL;
        }
    }
}

/* The value of fn(*args), a coroutine driven to its end; NULL with an exception set. Consumes fn and args, which
 * may be NULL after a failure that set the exception. */
static PyObject *call(PyObject *fn, PyObject *args)
{
    PyObject *r = fn && args ? PyObject_Call(fn, args, NULL) : NULL;
    Py_XDECREF(fn);
    Py_XDECREF(args);
    if (r && PyCoro_CheckExact(r)) r = drive(r);
    return r;
}

/* ---- hooks -------------------------------------------------------------------------------------------------- */

static xo_status_t py_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    const pyclass_t *pc = class_of(ctx);
    PyThreadState *ts = xo_py__enter();
    xo_status_t st = XO_OK;
    PyObject *a = args_tuple(args);
    PyObject *inst = a ? PyObject_Call(pc->pycls, a, NULL) : NULL;
    Py_XDECREF(a);
    PyObject *uid = inst ? PyUnicode_FromString(xo_ctx_uid(ctx)) : NULL;
    PyObject *addr = uid ? PyUnicode_FromString(xo_ctx_address(ctx)) : NULL;
    if (!addr || PyObject_SetAttr(inst, str_uid, uid) < 0 || PyObject_SetAttr(inst, str_address, addr) < 0) {
        st = fail(ctx, pc->cls.name, "__init__");
        Py_CLEAR(inst);
    }
    Py_XDECREF(uid);
    Py_XDECREF(addr);
    *(PyObject **)state = inst; /* NULL after a failure: no fini then */
    xo_py__leave(ts);
    return st;
}

static xo_status_t run_hook(xo_ctx_t *ctx, void *state, PyObject *name)
{
    const pyclass_t *pc = class_of(ctx);
    PyThreadState *ts = xo_py__enter();
    PyObject *r = call(PyObject_GetAttr(*(PyObject **)state, name), PyTuple_New(0));
    xo_status_t st = r ? XO_OK : fail(ctx, pc->cls.name, PyUnicode_AsUTF8(name));
    Py_XDECREF(r);
    xo_py__leave(ts);
    return st;
}

static xo_status_t py_after_create(xo_ctx_t *ctx, void *state) { return run_hook(ctx, state, str_post_create); }
static xo_status_t py_before_destroy(xo_ctx_t *ctx, void *state) { return run_hook(ctx, state, str_pre_destroy); }

/* Drops the instance (its __del__, if any, runs here). May run on any thread of the pool, or the one stopping it. */
static void py_fini(void *state)
{
    PyObject **obj = state;
    if (!*obj) return;
    PyThreadState *ts = xo_py__enter();
    Py_CLEAR(*obj);
    xo_py__leave(ts);
}

/* ---- methods ------------------------------------------------------------------------------------------------ */

static xo_status_t py_method(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const pyclass_t *pc = class_of(ctx);
    int i = xo_ctx_method_index(ctx);
    PyThreadState *ts = xo_py__enter();
    PyObject *fn = PyObject_GetAttr(*(PyObject **)state, pc->names[i]);
    PyObject *r = call(fn, fn ? args_tuple(args) : NULL);
    xo_status_t st;
    if (!r) st = fail(ctx, pc->cls.name, pc->cls.methods[i].name);
    else if (xo_py_pack(out, r, 0) < 0) st = fail(ctx, pc->cls.name, pc->cls.methods[i].name);
    else st = XO_OK; /* on an error the runtime drops what out holds */
    Py_XDECREF(r);
    xo_py__leave(ts);
    return st;
}

/* One call of a batch: writes the packed value into pk, or fails that call alone. */
static void batch_item(xo_batch_out_t *out, size_t k, PyObject *v, const char *what)
{
    /* Packed aside first: a value that fails half way must not leave half a value in the batch's reply. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (xo_py_pack(&pk, v, 0) < 0) {
        char text[400];
        xo_status_t st = xo_py__error(what, text, sizeof text);
        xo_batch_error(out, k, st, "%s", text);
    } else {
        msgpack_packer *dst = xo_batch_result(out, k);
        dst->callback(dst->data, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The batch of an extensible method whose class has `<name>_batch`: called once with the list of the calls'
 * argument tuples, it returns one result per call. */
static xo_status_t py_batch(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                            xo_batch_out_t *out)
{
    const pyclass_t *pc = class_of(ctx);
    int i = xo_ctx_method_index(ctx);
    const char *what = pc->cls.methods[i].name;
    PyThreadState *ts = xo_py__enter();
    xo_status_t st = XO_OK;
    PyObject *calls = PyList_New((Py_ssize_t)n);
    for (size_t k = 0; calls && k < n; k++) {
        PyObject *t = args_tuple(args[k]);
        if (!t) Py_CLEAR(calls);
        else PyList_SET_ITEM(calls, (Py_ssize_t)k, t);
    }
    PyObject *a = calls ? PyTuple_Pack(1, calls) : NULL;
    Py_XDECREF(calls);
    PyObject *r = call(a ? PyObject_GetAttr(*(PyObject **)state, pc->batches[i]) : NULL, a);
    if (!r) {
        st = fail(ctx, pc->cls.name, what);
    } else {
        PyObject *seq = PySequence_Fast(r, "a batch handler returns a list");
        if (!seq || PySequence_Fast_GET_SIZE(seq) != (Py_ssize_t)n) {
            if (seq) PyErr_Format(PyExc_ValueError, "%s_batch returned %zd results for %zu calls", what,
                                  PySequence_Fast_GET_SIZE(seq), n);
            st = fail(ctx, pc->cls.name, what);
        } else {
            for (size_t k = 0; k < n; k++) batch_item(out, k, PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)k), what);
        }
        Py_XDECREF(seq);
    }
    Py_XDECREF(r);
    xo_py__leave(ts);
    return st;
}

/* ---- building a class --------------------------------------------------------------------------------------- */

static bool intern_names(void)
{
    if (str_throw) return true;
    str_post_create = PyUnicode_InternFromString("__post_create__");
    str_pre_destroy = PyUnicode_InternFromString("__pre_destroy__");
    str_uid = PyUnicode_InternFromString("_xo_uid");
    str_address = PyUnicode_InternFromString("_xo_address");
    str_value = PyUnicode_InternFromString("value");
    str_throw = PyUnicode_InternFromString("throw");
    return str_post_create && str_pre_destroy && str_uid && str_address && str_value && str_throw;
}

xo_status_t xo_py__class_build(PyObject *item, const xo_actor_class_t **cls_p, char *err, size_t err_size)
{
    PyObject *pycls, *name, *methods;
    int stateless, post, pre;
    if (!intern_names() ||
        !PyArg_ParseTuple(item, "OUpO!pp", &pycls, &name, &stateless, &PyList_Type, &methods, &post, &pre)) {
        xo_py__error("xoscar_c.actor._describe", err, err_size);
        return XO_EINVAL;
    }
    Py_ssize_t n = PyList_GET_SIZE(methods);
    pyclass_t *pc = calloc(1, sizeof *pc);
    xo_method_t *ms = calloc((size_t)(n ? n : 1), sizeof *ms);
    PyObject **names = calloc((size_t)(n ? n : 1), sizeof *names);
    PyObject **batches = calloc((size_t)(n ? n : 1), sizeof *batches);
    const char *cname = PyUnicode_AsUTF8(name);
    char *cname_copy = cname ? strdup(cname) : NULL;
    if (!pc || !ms || !names || !batches || !cname_copy) {
        free(pc), free(ms), free(names), free(batches), free(cname_copy);
        PyErr_Clear();
        snprintf(err, err_size, "out of memory");
        return XO_ENOMEM;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *mname, *batch;
        unsigned int flags;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(methods, i), "UIO", &mname, &flags, &batch)) {
            xo_py__error("xoscar_c.actor._describe", err, err_size);
            return XO_EINVAL; /* what was allocated stays: a failed load is rare and its process usually exits */
        }
        const char *m = PyUnicode_AsUTF8(mname);
        ms[i].name = m ? strdup(m) : NULL;
        names[i] = Py_NewRef(mname);
        PyUnicode_InternInPlace(&names[i]);
        ms[i].fn = py_method;
        ms[i].flags = flags;
        if (batch != Py_None && PyUnicode_Check(batch)) {
            batches[i] = Py_NewRef(batch);
            ms[i].batch = py_batch;
        }
        if (!ms[i].name) {
            snprintf(err, err_size, "out of memory");
            return XO_ENOMEM;
        }
    }
    pc->pycls = Py_NewRef(pycls);
    pc->names = names;
    pc->batches = batches;
    pc->post_create = post;
    pc->pre_destroy = pre;
    pc->cls = (xo_actor_class_t){
        .abi_version = XO_CLASS_ABI_V1,
        .flags = stateless ? XO_ACTOR_STATELESS : XO_ACTOR_STATEFUL,
        .name = cname_copy,
        .state_size = sizeof(PyObject *),
        .init = py_init,
        .after_create = post ? py_after_create : NULL,
        .before_destroy = pre ? py_before_destroy : NULL,
        .fini = py_fini,
        .methods = ms,
        .n_methods = (size_t)n,
    };
    *cls_p = &pc->cls;
    return XO_OK;
}
