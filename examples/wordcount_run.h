/* The word count driver shared by the examples: split a text into chunks, have the mappers count them
 * concurrently (wherever they live), merge into the reducer, print the total and the top words. */
#ifndef XO_EXAMPLES_WORDCOUNT_RUN_H
#define XO_EXAMPLES_WORDCOUNT_RUN_H

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

/* Counts text (its bytes may be changed and restored) with n_mappers mappers; prints the top k words. Exits on an
 * error. Returns the number of chunks. */
size_t wordcount_run(xo_ref_t *const *mappers, size_t n_mappers, const xo_ref_t *reducer, char *text, size_t len,
                     int k);

#endif
