// The ucx channel as a plugin (libxoscar-ucx.so, base/plugin.h, transport/registry.c): where the build found UCX
// (Debian's libucx-dev, scripts/install-deps.sh) it loads and the registry lists it before tcp; where its file is
// not a shared object or was built for another plugin ABI, the registry is a build without UCX's, other hosts are
// reached over TCP even with XO_UCX=1, one log line says why, and a ucx:// URL fails with that reason. The fallback
// cases run in a child process (a death test re-executes this binary): the registry is built once per process.
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>

#include "base/log.h"
#include "base/plugin.h"
#include "transport/channel.h"
#include "transport/router.h"
#include "xoscar/xoscar.h"

namespace {

TEST(UcxPlugin, LoadsWhereTheBuildFoundUcx)
{
#ifndef XO_TEST_UCX_PLUGIN
    GTEST_SKIP() << "this build found no UCX (Debian: libucx-dev, see scripts/install-deps.sh)";
#else
    unsetenv("XO_PLUGIN_PATH");
    const xo_transport_ops_t *ucx = xo__transport_find("ucx");
    ASSERT_NE(nullptr, ucx) << xo__plugin_why("ucx");
    ASSERT_NE(nullptr, xo__plugin_path("ucx"));
    EXPECT_EQ(std::string(XO_TEST_BUILD_PLUGIN_DIR) + "/libxoscar-ucx.so", xo__plugin_path("ucx"));
    size_t n = 0;
    const xo_transport_ops_t *const *all = xo__transport_list(&n);
    ASSERT_EQ(4u, n);
    EXPECT_EQ(ucx, all[2]);
    EXPECT_STREQ("tcp", all[3]->scheme);
    // A listener of the plugin's, through the core's generic layer.
    xo_listener_t *l = nullptr;
    ASSERT_EQ(XO_OK, xo__listen("ucx://127.0.0.1:0", nullptr, &l)) << xo_last_error();
    EXPECT_EQ(0, strncmp(xo__listener_url(l), "ucx://127.0.0.1:", 16)) << xo__listener_url(l);
    xo__listener_close(l);
#endif
}

[[noreturn]] void TcpOnlyChild(const char *dir)
{
    setenv("XO_PLUGIN_PATH", dir, 1);
    setenv("XO_UCX", "1", 1);
    xo__log_set_threshold(XO_LOG_INFO);
    int bad = 0;
    if (xo__transport_find("ucx")) bad |= 1;
    size_t n = 0;
    xo__transport_list(&n);
    if (n != 3) bad |= 2;
    // Another host with XO_UCX=1: TCP alone, as in a build without UCX.
    xo_pool_addr_t a;
    char urls[XO_ROUTE_MAX][XO_URL_MAX];
    if (!xo__pool_addr_parse("10.1.2.3:7400/1", &a) || xo__route_connect(&a, urls, XO_ROUTE_MAX) != 1 ||
        strcmp(urls[0], "tcp://10.1.2.3:7401") != 0)
        bad |= 4;
    xo_channel_t *ch = nullptr;
    xo_status_t st = xo__connect("ucx://127.0.0.1:1", nullptr, 100, &ch);
    fprintf(stderr, "ucx url: %s: %s\n", xo_status_name(st), xo_last_error());
    if (st != XO_EINVAL || !strstr(xo_last_error(), "plugin ucx: ")) bad |= 8;
    fprintf(stderr, "bad %d\n", bad);
    _exit(bad);
}

TEST(UcxPlugin, AFileThatIsNotASharedObjectLeavesTcp)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/junk";
    EXPECT_EXIT(TcpOnlyChild(dir.c_str()), ::testing::ExitedWithCode(0),
                "plugin ucx: not loaded: " + dir +
                    "/libxoscar-ucx.so: .*; TCP instead of UCX.*ucx url: XO_EINVAL: url 'ucx://127.0.0.1:1': no "
                    "transport for scheme 'ucx': plugin ucx: " + dir + "/libxoscar-ucx.so: ");
}

TEST(UcxPlugin, AnotherAbiLeavesTcp)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/abi";
    EXPECT_EXIT(TcpOnlyChild(dir.c_str()), ::testing::ExitedWithCode(0),
                "plugin ucx: not loaded: .*built for plugin ABI 999.*; TCP instead of UCX");
}

TEST(UcxPlugin, XoTransportNamingAMissingPluginWarnsWithTheReason)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    std::string dir = std::string(XO_TEST_PLUGIN_DIR) + "/junk";
    EXPECT_EXIT(
        {
            setenv("XO_PLUGIN_PATH", dir.c_str(), 1);
            setenv("XO_TRANSPORT", "ucx", 1);
            xo_pool_addr_t a;
            char urls[XO_ROUTE_MAX][XO_URL_MAX];
            size_t n = xo__pool_addr_parse("127.0.0.1:7400", &a) ? xo__route_connect(&a, urls, XO_ROUTE_MAX) : 99;
            _exit(n == 0 ? 0 : 1); /* this host's pools: nothing, as XO_TRANSPORT asks for one that is not there */
        },
        ::testing::ExitedWithCode(0), "XO_TRANSPORT=ucx names no transport of this runtime: plugin ucx: .*junk");
}

} // namespace
