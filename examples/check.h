/* The examples' one error check: print the call, its status and the error text, and exit. */
#ifndef XO_EXAMPLES_CHECK_H
#define XO_EXAMPLES_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <xoscar/xoscar.h>

#define CHECK(expr)                                                                                  \
    do {                                                                                             \
        xo_status_t st_ = (expr);                                                                    \
        if (st_ != XO_OK) {                                                                          \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, xo_status_name(st_), \
                    xo_last_error());                                                                \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

#endif
