/* The Python embedding's internal interface (python/embed): the interpreter and the GIL (embed.c), classes built
 * from Python classes (pyclass.c). Not installed; the plugin's one exported symbol is the loader (xoscar/module.h). */
#ifndef XO_PY_EMBED_H
#define XO_PY_EMBED_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <xoscar/xoscar.h>

/* Takes the GIL for this thread with a thread state of its own: one that no suspended activation of this thread is
 * using (a cached one, or a new one). Every entry into Python from the runtime's threads goes through here and
 * xo_py__leave, in pairs, on one thread (fibers never migrate). Why a state per activation: a method that waits
 * releases the GIL with its Python frames still on its thread state; another method of the same thread running
 * meanwhile on the same state would push its frames onto those. */
PyThreadState *xo_py__enter(void);

/* Releases the GIL taken by xo_py__enter and gives ts back to this thread's cache. */
void xo_py__leave(PyThreadState *ts);

/* The status and error text of the raised Python exception, which it clears (GIL held): an xoscar_c.XoscarError
 * (e.g. from a call this method made) keeps its status and text; any other exception is XO_EMETHOD with the last
 * line of its traceback ("ValueError: bad value"). With $XO_PYTHON_TRACEBACK set, the whole traceback also goes to
 * stderr. what names the method for that print. */
xo_status_t xo_py__error(const char *what, char *text, size_t size);

/* Builds the C class of the Python class described by one item of xoscar_c.actor._describe (GIL held). On XO_OK
 * *cls_p is a class in static storage from then on (never freed: the runtime keeps classes for the process's
 * life). On an error returns XO_EINVAL with a text in err. */
xo_status_t xo_py__class_build(PyObject *item, const xo_actor_class_t **cls_p, char *err, size_t err_size);

#endif
