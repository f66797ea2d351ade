/* What xoscar_c._core shares with the pool's Python embedding (python/embed), which compiles _core.c into itself:
 * the value mapping between Python and msgpack and the exceptions of statuses. Hidden symbols: nothing outside the
 * one library that holds them sees them. All of them need the GIL. */
#ifndef XOSCAR_C_CORE_H
#define XOSCAR_C_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <xoscar/xoscar.h>

#define XO_PY_HIDDEN __attribute__((visibility("hidden")))

/* Packs o into pk (None, bool, int, float, str, bytes-like, list, tuple, dict); 0, or -1 with an exception set
 * (the packer then holds a partial value: discard it). depth: 0 at the top. */
XO_PY_HIDDEN int xo_py_pack(msgpack_packer *pk, PyObject *o, int depth);

/* A new reference to the Python value of o, or NULL with an exception set. o is only read. */
XO_PY_HIDDEN PyObject *xo_py_unpack(const msgpack_object *o, int depth);

/* A new reference to the xoscar_c exception for (st, text) (ActorNotExist, ...), or NULL with an exception set. */
XO_PY_HIDDEN PyObject *xo_py_make_error(xo_status_t st, const char *text);

/* The module's init function (the embedding puts the module into sys.modules as xoscar_c._core itself). */
PyMODINIT_FUNC PyInit__core(void);

#endif
