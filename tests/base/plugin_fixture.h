// What the test plugins (plugin_fixture.c) and the loader's test (plugin_test.cc) agree on.
#ifndef XO_TESTS_BASE_PLUGIN_FIXTURE_H
#define XO_TESTS_BASE_PLUGIN_FIXTURE_H

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// The layout fingerprint of the good test plugins, which the test passes to the loader.
#define XO_TEST_PLUGIN_LAYOUT 0x7e570001u

typedef struct xo_test_plugin_ops {
    // Sets the calling thread's error text through the plugin's host table, and returns XO_EINVAL.
    xo_status_t (*fail)(int n);
} xo_test_plugin_ops_t;

#ifdef __cplusplus
}
#endif
#endif
