/* The Python embedding: one CPython interpreter per process, started by the first "python:" module, and the loader
 * entry point xo_module_load calls (XO_PYTHON_LOADER_SYMBOL, include/xoscar/module.h).
 *
 * This library links libpython and not libxoscar: its xo_* references bind to the runtime of the process that
 * loads it (xoscar-pool, or a program linking libxoscar.so), as an actor module's do. It holds its own copy of the
 * xoscar_c binding (_core.c, compiled with XO_PY_EMBEDDED), which it puts into sys.modules as xoscar_c._core before
 * xoscar_c is imported: Python code in the pool then calls the pool's own runtime, never a second libxoscar (which
 * the pip-installed extension would load, and whose calls would see no pools).
 *
 * The GIL: the thread that starts the interpreter releases it when the load is done; from then on Python runs only
 * between xo_py__enter and xo_py__leave (hooks, methods, loads), and every wait inside (a call to another actor, a
 * sleep) releases it. One thread holds it at a time: a pool thread entering Python while another runs Python code
 * blocks (the OS thread, with the C actors it would run) until that one waits or its switch interval (5 ms)
 * expires. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xoscar/module.h>

#include "_core.h"
#include "embed.h"

static PyInterpreterState *interp; /* set once, under xo_module_load's lock (loads are serialised) */
static char start_failed[512];     /* why the interpreter could not be made ready: every later load says it too */

/* ---- thread states ------------------------------------------------------------------------------------------ */

/* Each thread keeps the states its finished activations gave back. Sized for the activations one thread has
 * suspended at once in practice; beyond it states are deleted (and made again when needed). */
#define TS_CACHE 64
static __thread PyThreadState *ts_cache[TS_CACHE];
static __thread int ts_cached;

PyThreadState *xo_py__enter(void)
{
    /* PyThreadState_New needs no GIL. The first state made on a thread is also the one PyGILState_Ensure finds
     * there: extension code calling that while another state of the thread holds the GIL would wait for itself;
     * see docs/modules.md, "Python actors". */
    PyThreadState *ts = ts_cached ? ts_cache[--ts_cached] : PyThreadState_New(interp);
    PyEval_RestoreThread(ts);
    return ts;
}

void xo_py__leave(PyThreadState *ts)
{
    if (ts_cached < TS_CACHE) {
        PyEval_SaveThread();
        ts_cache[ts_cached++] = ts;
        return;
    }
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent(); /* releases the GIL */
}

/* ---- errors ------------------------------------------------------------------------------------------------- */

/* The text of str(o) into text; false when it has none. */
static bool str_into(PyObject *o, char *text, size_t size)
{
    PyObject *s = o ? PyObject_Str(o) : NULL;
    const char *c = s ? PyUnicode_AsUTF8(s) : NULL;
    if (c) snprintf(text, size, "%s", c);
    Py_XDECREF(s);
    PyErr_Clear();
    return c != NULL;
}

xo_status_t xo_py__error(const char *what, char *text, size_t size)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb) PyException_SetTraceback(value, tb);
    xo_status_t st = XO_EMETHOD;
    snprintf(text, size, "a Python exception");
    /* A status from below (a call this method made failed: ActorNotExist, ServerClosed...) goes on unchanged, as
     * a C method returns the status of a call that failed. */
    PyObject *status = value ? PyObject_GetAttrString(value, "status") : NULL;
    PyObject *etext = status ? PyObject_GetAttrString(value, "text") : NULL;
    if (status && etext && PyLong_Check(status) && PyUnicode_Check(etext)) {
        long v = PyLong_AsLong(status);
        if (v < 0 && str_into(etext, text, size)) st = (xo_status_t)v; /* statuses of errors are negative */
    }
    Py_XDECREF(status);
    Py_XDECREF(etext);
    PyErr_Clear();
    PyObject *tbm = PyImport_ImportModule("traceback");
    if (st == XO_EMETHOD && tbm && value) {
        PyObject *lines = PyObject_CallMethod(tbm, "format_exception_only", "OO", type, value);
        Py_ssize_t n = lines && PyList_Check(lines) ? PyList_GET_SIZE(lines) : 0;
        if (n > 0 && str_into(PyList_GET_ITEM(lines, n - 1), text, size)) {
            size_t l = strlen(text);
            while (l && (text[l - 1] == '\n' || text[l - 1] == ' ')) text[--l] = '\0';
        }
        Py_XDECREF(lines);
    }
    if (getenv("XO_PYTHON_TRACEBACK") && tbm && value) {
        PyObject *lines = PyObject_CallMethod(tbm, "format_exception", "OOO", type, value, tb ? tb : Py_None);
        PyObject *sep = PyUnicode_FromString("");
        PyObject *all = lines && sep ? PyUnicode_Join(sep, lines) : NULL;
        const char *c = all ? PyUnicode_AsUTF8(all) : NULL;
        if (c) fprintf(stderr, "xoscar python: %s raised:\n%s", what, c);
        Py_XDECREF(all);
        Py_XDECREF(sep);
        Py_XDECREF(lines);
    }
    Py_XDECREF(tbm);
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return st;
}

/* ---- the interpreter ---------------------------------------------------------------------------------------- */

/* Starts the interpreter on the calling thread, which then holds the GIL. */
static xo_status_t start_python(char *err, size_t size)
{
    /* This library came with RTLD_LOCAL, and libpython with it: the C extensions Python imports (numpy's, ...) do
     * not link libpython, they expect its symbols in the global scope. Make it global. */
    Dl_info info = {0};
    if (dladdr((void *)&Py_InitializeFromConfig, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* SIGINT and SIGTERM stay the pool's (it stops on them) */
    config.parse_argv = 0;
    /* $XO_PYTHON: the interpreter whose environment the pool's Python uses (a virtual environment's bin/python
     * gives its site-packages); same X.Y version as the libpython this was built with. */
    const char *exe = getenv("XO_PYTHON");
    PyStatus ps = exe && exe[0] ? PyConfig_SetBytesString(&config, &config.program_name, exe) : PyStatus_Ok();
    if (!PyStatus_Exception(ps)) ps = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(ps)) {
        snprintf(err, size, "the Python interpreter did not start: %s%s%s", ps.func ? ps.func : "",
                 ps.func ? ": " : "", ps.err_msg ? ps.err_msg : "?");
        return XO_EINVAL;
    }
    interp = PyInterpreterState_Get();
    PyObject *core = PyInit__core();
    PyObject *mods = PyImport_GetModuleDict();
    if (!core || PyDict_SetItemString(mods, "xoscar_c._core", core) < 0) {
        Py_XDECREF(core);
        return xo_py__error("xoscar_c._core", err, size);
    }
    Py_DECREF(core);
    PyObject *pkg = PyImport_ImportModule("xoscar_c");
    if (!pkg) {
        /* Not installed in this interpreter's environment: take the package from the source tree this library was
         * built from, so a build tree works without installing it. */
        PyErr_Clear();
        PyObject *path = PySys_GetObject("path"); /* borrowed */
        PyObject *src = PyUnicode_FromString(XO_PYTHON_SRC_DIR);
        if (path && src) PyList_Append(path, src);
        Py_XDECREF(src);
        pkg = PyImport_ImportModule("xoscar_c");
    }
    if (!pkg) {
        char why[400];
        xo_py__error("import xoscar_c", why, sizeof why);
        snprintf(err, size, "cannot import xoscar_c (pip install it into the pool's Python, see $XO_PYTHON): %s",
                 why);
        return XO_EINVAL;
    }
    Py_DECREF(pkg);
    return XO_OK;
}

/* The loader (include/xoscar/module.h, xo_python_loader_fn). Serialised by xo_module_load's lock. */
XO_API xo_status_t xo_python_load_v1(const char *name, const xo_module_v1_t **mod_p, char *err, size_t err_size)
{
    PyThreadState *ts = NULL;
    xo_status_t st;
    if (start_failed[0]) {
        snprintf(err, err_size, "%s", start_failed);
        return XO_EINVAL;
    }
    if (!interp) {
        st = start_python(start_failed, sizeof start_failed);
        if (st != XO_OK) {
            if (interp) PyEval_SaveThread(); /* the interpreter runs; leave the GIL free */
            if (!start_failed[0]) snprintf(start_failed, sizeof start_failed, "the interpreter did not start");
            snprintf(err, err_size, "%s", start_failed);
            return st;
        }
        ts = PyThreadState_Get(); /* the main state stays with this thread, for its later entries */
    } else {
        ts = xo_py__enter();
    }
    PyObject *mod = NULL, *actor = NULL, *items = NULL;
    const xo_actor_class_t **classes = NULL;
    xo_module_v1_t *desc = NULL;
    char *mname = NULL;
    st = XO_EINVAL;
    mod = PyImport_ImportModule(name);
    if (!mod) {
        char why[400];
        xo_py__error(name, why, sizeof why);
        snprintf(err, err_size, "cannot import %s: %s", name, why);
        goto out;
    }
    actor = PyImport_ImportModule("xoscar_c.actor");
    items = actor ? PyObject_CallMethod(actor, "_describe", "O", mod) : NULL;
    if (!items || !PyList_Check(items)) {
        char why[400];
        xo_py__error(name, why, sizeof why);
        snprintf(err, err_size, "cannot read its actor classes: %s", why);
        goto out;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (n == 0) {
        snprintf(err, err_size,
                 "module %s defines no actor class (subclasses of xoscar_c.Actor or xoscar_c.StatelessActor, or "
                 "a __xoscar_actors__ list)",
                 name);
        goto out;
    }
    classes = calloc((size_t)n, sizeof *classes);
    desc = calloc(1, sizeof *desc);
    size_t nl = strlen(name) + strlen(XO_PYTHON_PREFIX) + 1;
    mname = malloc(nl);
    if (!classes || !desc || !mname) {
        snprintf(err, err_size, "out of memory");
        st = XO_ENOMEM;
        goto out;
    }
    snprintf(mname, nl, "%s%s", XO_PYTHON_PREFIX, name);
    for (Py_ssize_t i = 0; i < n; i++) {
        st = xo_py__class_build(PyList_GET_ITEM(items, i), &classes[i], err, err_size);
        if (st != XO_OK) goto out; /* classes built so far stay allocated: they hold references into Python */
    }
    *desc = (xo_module_v1_t){.abi_version = XO_MODULE_ABI_V1, .name = mname, .classes = classes,
                             .n_classes = (size_t)n};
    *mod_p = desc;
    st = XO_OK;
out:
    if (st != XO_OK) {
        free(classes);
        free(desc);
        free(mname);
    }
    Py_XDECREF(items);
    Py_XDECREF(actor);
    Py_XDECREF(mod);
    xo_py__leave(ts);
    return st;
}
