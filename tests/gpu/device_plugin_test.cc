// The cuda device backend as a plugin (libxoscar-cuda.so, base/plugin.h, gpu/device.c's registry): where the build
// made it, it loads (also on a machine without a GPU: libcudart loads without a driver); where its file is not a
// shared object or was built for another plugin ABI, the registry is a build without CUDA's (the host backend
// alone), one log line says why, and a pool that asks for a cuda device fails with that reason. The fallback cases
// run in a child process (a death test re-executes this binary), since the registry is built once per process.
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "base/log.h"
#include "base/plugin.h"
#include "xoscar/gpu.h"
#include "xoscar/xoscar.h"

namespace {

TEST(CudaPlugin, LoadsWhereTheBuildMadeIt)
{
#ifndef XO_TEST_CUDA_PLUGIN
    GTEST_SKIP() << "this build made no cuda plugin (no CUDA toolkit found, or XO_WITH_CUDA=OFF)";
#else
    unsetenv("XO_PLUGIN_PATH");
    const xo_device_ops_t *cuda = xo_device_backend_find("cuda");
    ASSERT_NE(nullptr, cuda) << xo__plugin_why("cuda");
    EXPECT_EQ(cuda, xo_device_backend_at(0)) << "a real GPU backend comes first";
    ASSERT_NE(nullptr, xo__plugin_path("cuda"));
    std::string path = xo__plugin_path("cuda");
    EXPECT_EQ(std::string(XO_TEST_BUILD_PLUGIN_DIR) + "/libxoscar-cuda.so", path);
#endif
}

// In the child: the registry built with XO_PLUGIN_PATH = dir; exits with a bit mask of what was wrong.
[[noreturn]] void HostOnlyChild(const char *dir)
{
    setenv("XO_PLUGIN_PATH", dir, 1);
    xo__log_set_threshold(XO_LOG_INFO);
    int bad = 0;
    if (xo_device_backend_find("cuda")) bad |= 1;
    if (!xo_device_backend_at(0) || strcmp(xo_device_backend_name(xo_device_backend_at(0)), "host") != 0) bad |= 2;
    if (xo_device_backend_at(1)) bad |= 4;
    xo_pool_config_t cfg = {};
    cfg.device = "cuda:0";
    xo_pool_t *pool = nullptr;
    xo_status_t st = xo_pool_start(&cfg, &pool);
    fprintf(stderr, "cuda pool: %s: %s\n", xo_status_name(st), xo_last_error());
    if (st != XO_ENOTSUP || !strstr(xo_last_error(), "plugin cuda: ")) bad |= 8;
    if (st == XO_OK) xo_pool_stop(pool);
    cfg.device = "host:0"; /* the host backend as in any build */
    st = xo_pool_start(&cfg, &pool);
    if (st != XO_OK) bad |= 16;
    else xo_pool_stop(pool);
    fprintf(stderr, "bad %d\n", bad);
    _exit(bad);
}

TEST(CudaPlugin, AFileThatIsNotASharedObjectLeavesTheHostBackend)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/junk";
    EXPECT_EXIT(HostOnlyChild(dir.c_str()), ::testing::ExitedWithCode(0),
                "plugin cuda: not loaded: " + dir +
                    "/libxoscar-cuda.so: .*; the host device backend only.*cuda pool: XO_ENOTSUP: no device backend "
                    "\"cuda\": plugin cuda: " + dir + "/libxoscar-cuda.so: ");
}

TEST(CudaPlugin, AnotherAbiLeavesTheHostBackend)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/abi";
    EXPECT_EXIT(HostOnlyChild(dir.c_str()), ::testing::ExitedWithCode(0),
                "plugin cuda: not loaded: .*built for plugin ABI 999.*; the host device backend only.*cuda pool: "
                "XO_ENOTSUP: .*plugin ABI 999");
}

TEST(CudaPlugin, XoPluginDisableLeavesTheHostBackend)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    setenv("XO_PLUGIN_DISABLE", "cuda", 1);
    EXPECT_EXIT(HostOnlyChild(XO_TEST_BUILD_PLUGIN_DIR), ::testing::ExitedWithCode(0),
                "plugin cuda: not loaded: disabled by XO_PLUGIN_DISABLE=cuda; the host device backend only");
    unsetenv("XO_PLUGIN_DISABLE");
}

} // namespace
