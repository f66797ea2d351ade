// base/plugin.c: the loader's search path, every check a file must pass (each against a test plugin that fails it,
// tests/base/CMakeLists.txt), the one log line per plugin and the reason kept for a later explicit request. Each case
// asks for a plugin name no other case uses: the loader remembers every answer for the life of the process.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "base/error.h"
#include "base/log.h"
#include "base/plugin.h"
#include "tests/base/plugin_fixture.h"

namespace {

const std::string kGood = std::string(XO_TEST_PLUGIN_DIR) + "/good";
const std::string kJunk = std::string(XO_TEST_PLUGIN_DIR) + "/junk";

// Loads name with XO_PLUGIN_PATH = path and the log at info, and returns what the loader logged.
std::string Load(const char *name, const std::string &path, const void **ops_p,
                 xo__plugin_kind_t kind = XO_PLUGIN_DEVICE, uint32_t layout = XO_TEST_PLUGIN_LAYOUT)
{
    setenv("XO_PLUGIN_PATH", path.c_str(), 1);
    xo__log_set_threshold(XO_LOG_INFO);
    testing::internal::CaptureStderr();
    *ops_p = xo__plugin_load(name, kind, layout, "the test goes on without it");
    return testing::internal::GetCapturedStderr();
}

int Count(const std::string &text, const std::string &what)
{
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
    return n;
}

TEST(Plugin, AGoodPluginLoadsOnceAndReachesTheCoreThroughTheHostTable)
{
    const void *ops = nullptr;
    std::string log = Load("testgood", kGood, &ops);
    ASSERT_NE(nullptr, ops) << log;
    std::string path = kGood + "/libxoscar-testgood.so";
    EXPECT_EQ(1, Count(log, "plugin testgood: loaded " + path)) << log;
    EXPECT_EQ(nullptr, xo__plugin_why("testgood"));
    ASSERT_NE(nullptr, xo__plugin_path("testgood"));
    EXPECT_EQ(path, xo__plugin_path("testgood"));
    // The plugin's xo__error_set writes this thread's error text in the core, through the host table.
    xo__error_clear();
    EXPECT_EQ(XO_EINVAL, static_cast<const xo_test_plugin_ops_t *>(ops)->fail(7));
    EXPECT_STREQ("set by plugin testgood with 7", xo_last_error());
    // Asked again: the same table, no second look and no second line.
    const void *again = nullptr;
    log = Load("testgood", kGood, &again);
    EXPECT_EQ(ops, again);
    EXPECT_EQ("", log);
}

TEST(Plugin, AMissingFileSaysWhereItLookedAndIsNoWarning)
{
    const void *ops = nullptr;
    std::string log = Load("testmissing", kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    const char *why = xo__plugin_why("testmissing");
    ASSERT_NE(nullptr, why);
    EXPECT_NE(nullptr, strstr(why, "not installed: libxoscar-testmissing.so is in none of ")) << why;
    EXPECT_NE(nullptr, strstr(why, kGood.c_str())) << why;
    EXPECT_NE(nullptr, strstr(why, "this build made none")) << why;
    EXPECT_EQ(1, Count(log, "plugin testmissing: not loaded: not installed")) << log;
    EXPECT_EQ(1, Count(log, "the test goes on without it")) << log;
    EXPECT_EQ(1, Count(log, "[I ")) << "a plugin that is not installed is logged at info: " << log;
    EXPECT_EQ(nullptr, xo__plugin_path("testmissing"));
}

TEST(Plugin, AFileThatIsNotASharedObjectGivesDlopensTextAsAWarning)
{
    const void *ops = nullptr;
    std::string log = Load("testjunk", kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    std::string why = xo__plugin_why("testjunk") ? xo__plugin_why("testjunk") : "";
    EXPECT_NE(std::string::npos, why.find(kGood + "/libxoscar-testjunk.so")) << why;
    // glibc's words for a text file: "invalid ELF header" or "file too short".
    EXPECT_TRUE(why.find("invalid ELF header") != std::string::npos || why.find("file too short") != std::string::npos)
        << why;
    EXPECT_EQ(1, Count(log, "[W ")) << log;
    EXPECT_EQ(1, Count(log, "plugin testjunk: not loaded: " + why)) << log;
}

TEST(Plugin, ASharedObjectWithoutTheDescriptorIsRefused)
{
    const void *ops = nullptr;
    std::string log = Load("testnodesc", kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testnodesc"));
    EXPECT_NE(nullptr, strstr(xo__plugin_why("testnodesc"), "has no xo_plugin descriptor")) << log;
}

TEST(Plugin, AnotherAbiVersionIsRefusedNamingBoth)
{
    const void *ops = nullptr;
    std::string log = Load("testabi", kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testabi"));
    std::string want = "built for plugin ABI 999, this runtime loads ABI " + std::to_string(XO_PLUGIN_ABI_VERSION);
    EXPECT_NE(nullptr, strstr(xo__plugin_why("testabi"), want.c_str())) << xo__plugin_why("testabi");
    EXPECT_EQ(1, Count(log, "[W ")) << log;
}

TEST(Plugin, AnotherKindOrNameIsRefused)
{
    const void *ops = nullptr;
    Load("testkind", kGood, &ops, XO_PLUGIN_DEVICE);
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testkind"));
    EXPECT_NE(nullptr, strstr(xo__plugin_why("testkind"), "of kind 2, not \"testkind\" of kind 1"))
        << xo__plugin_why("testkind");
    // A descriptor naming another plugin than its file does.
    Load("testrenamed", kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testrenamed"));
    EXPECT_NE(nullptr, strstr(xo__plugin_why("testrenamed"), "it is plugin \"testname\""))
        << xo__plugin_why("testrenamed");
}

TEST(Plugin, AnotherLayoutIsRefused)
{
    const void *ops = nullptr;
    Load("testlayout", kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testlayout"));
    EXPECT_NE(nullptr, strstr(xo__plugin_why("testlayout"), "do not match this runtime's"))
        << xo__plugin_why("testlayout");
}

TEST(Plugin, TheFirstFileFoundIsTheOneEvenWhenItIsRefused)
{
    // junk/ has a text file of that name, good/ a good plugin: the loader never goes past the first.
    const void *ops = nullptr;
    Load("testfirst", kJunk + ":" + kGood, &ops);
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testfirst"));
    EXPECT_NE(nullptr, strstr(xo__plugin_why("testfirst"), (kJunk + "/libxoscar-testfirst.so").c_str()));
}

TEST(Plugin, XoPluginDisableTurnsOneOff)
{
    // testoff would be a good plugin (the same file as testgood under another name): the switch wins.
    setenv("XO_PLUGIN_DISABLE", "nothing,testoff", 1);
    const void *ops = nullptr;
    std::string log = Load("testoff", kGood, &ops);
    unsetenv("XO_PLUGIN_DISABLE");
    EXPECT_EQ(nullptr, ops);
    ASSERT_NE(nullptr, xo__plugin_why("testoff"));
    EXPECT_STREQ("disabled by XO_PLUGIN_DISABLE=nothing,testoff", xo__plugin_why("testoff"));
    EXPECT_EQ(1, Count(log, "[I ")) << log;
}

TEST(Plugin, TheSearchPathStartsWithXoPluginPathThenTheBuildTree)
{
    setenv("XO_PLUGIN_PATH", (kJunk + ":" + kGood).c_str(), 1);
    char buf[4096];
    xo__plugin_search_path(buf, sizeof buf);
    // This binary runs from the build tree: after XO_PLUGIN_PATH comes the tree's plugin directory, and nothing
    // installed.
    std::string want = kJunk + ":" + kGood + ":";
    EXPECT_EQ(0u, std::string(buf).find(want)) << buf;
    std::string rest = std::string(buf).substr(want.size());
    EXPECT_EQ(std::string::npos, rest.find(':')) << buf;
    EXPECT_NE(std::string::npos, rest.find("/lib/xoscar")) << buf;
}

} // namespace
