/* The word count driver shared by the examples: split a text into chunks, have the mappers count them
 * concurrently (wherever they live), merge into the reducer, print the total and the top words. */
#ifndef XO_EXAMPLES_WORDCOUNT_RUN_H
#define XO_EXAMPLES_WORDCOUNT_RUN_H

#include <stdio.h>
#include <stdlib.h>

#include <xoscar/xoscar.h>

#include "check.h"


/* Counts text (its bytes may be changed and restored) with n_mappers mappers; prints the top k words. Exits on an
 * error. Returns the number of chunks. */
size_t wordcount_run(xo_ref_t *const *mappers, size_t n_mappers, const xo_ref_t *reducer, char *text, size_t len,
                     int k);

#endif
