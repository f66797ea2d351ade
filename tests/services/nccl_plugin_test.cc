// The NCCL entry points as a plugin (libxoscar-nccl.so, services/nccl/nccl_api.h): where the build found NCCL the
// plugin loads (libnccl and libcudart load without a GPU); with a bad plugin file the table is NULL, so collectives
// and device buffers take their host paths, one log line says why, and an explicit request for NCCL gets that
// reason. The fallback cases run in a child process (a death test re-executes this binary): the table is loaded
// once per process.
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "base/log.h"
#include "base/plugin.h"
#include "services/nccl/nccl_api.h"
#include "xoscar/xoscar.h"

namespace {

TEST(NcclPlugin, LoadsWhereTheBuildFoundNccl)
{
    unsetenv("XO_PLUGIN_PATH");
    const xo__nccl_api_t *nc = xo__nccl_api();
    ASSERT_NE(nullptr, nc) << xo__plugin_why("nccl");
    EXPECT_EQ(std::string(XO_TEST_BUILD_PLUGIN_DIR) + "/libxoscar-nccl.so", xo__plugin_path("nccl"));
    // A call that needs no GPU: the library's own text for a status.
    EXPECT_NE(nullptr, nc->get_error_string(ncclInvalidArgument));
}

[[noreturn]] void NoNcclChild(const char *dir)
{
    setenv("XO_PLUGIN_PATH", dir, 1);
    xo__log_set_threshold(XO_LOG_INFO);
    int bad = 0;
    if (xo__nccl_api()) bad |= 1;
    xo_status_t st = xo__nccl_missing("collective group g, backend nccl");
    fprintf(stderr, "asked for nccl: %s: %s\n", xo_status_name(st), xo_last_error());
    if (st != XO_ENOTSUP) bad |= 2;
    _exit(bad);
}

TEST(NcclPlugin, AFileThatIsNotASharedObjectTurnsTheNcclPathsOff)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/junk";
    EXPECT_EXIT(NoNcclChild(dir.c_str()), ::testing::ExitedWithCode(0),
                "plugin nccl: not loaded: " + dir +
                    "/libxoscar-nccl.so: .*; collectives use their host backends and device buffers are staged.*"
                    "asked for nccl: XO_ENOTSUP: collective group g, backend nccl: NCCL is not available here: "
                    "plugin nccl: " + dir + "/libxoscar-nccl.so: ");
}

TEST(NcclPlugin, AnotherAbiTurnsTheNcclPathsOff)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/abi";
    EXPECT_EXIT(NoNcclChild(dir.c_str()), ::testing::ExitedWithCode(0),
                "plugin nccl: not loaded: .*built for plugin ABI 999.*asked for nccl: XO_ENOTSUP: .*plugin ABI 999");
}

} // namespace
