/* The member actor as a module, for groups whose members live in sub pool processes. */
#include "coll_member.h"
#include "xoscar/module.h"

XO_MODULE_DEFINE("test_coll", &xo_test_coll_member_class);
