/* The collectives tests' member actor (coll_member.c). */
#ifndef XO_TESTS_COLL_MEMBER_H
#define XO_TESTS_COLL_MEMBER_H

#include "xoscar/xoscar.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const xo_actor_class_t xo_test_coll_member_class;

#ifdef __cplusplus
}
#endif
#endif
