/* Test plugins for the loader (tests/base/plugin_test.cc and the fallback tests of gpu/, transport/, services/): one
 * source, built under several names with what its descriptor claims set by FIXTURE_* defines
 * (tests/base/CMakeLists.txt), so that each check of base/plugin.c has a file that passes it and one that fails it. */
#include "base/error.h"
#include "base/plugin.h"
#include "tests/base/plugin_fixture.h"

static xo_status_t fail(int n) { return xo__error_set(XO_EINVAL, "set by plugin %s with %d", FIXTURE_NAME, n); }

static const xo_test_plugin_ops_t ops = {.fail = fail};

#ifndef FIXTURE_NO_DESCRIPTOR
XO_API extern const xo__plugin_t xo_plugin;
const xo__plugin_t xo_plugin = {
    .abi_version = FIXTURE_ABI,
    .kind = FIXTURE_KIND,
    .layout = FIXTURE_LAYOUT,
    .name = FIXTURE_NAME,
    .attach = xo__plugin_attach,
    .ops = &ops,
};
#else
/* A shared object that is not a plugin: something to export, and no descriptor. */
XO_API const xo_test_plugin_ops_t *xo_not_a_plugin(void) { return &ops; }
#endif
