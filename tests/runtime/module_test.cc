// runtime/module.c: loading actor modules (tests/modules) and creating their actors by class name. Public API only.
// Built into three hosts (tests/runtime/CMakeLists.txt): static runtime exported, libxoscar.so, and static runtime
// not exported (XO_TEST_NOEXPORT_HOST). Each test case runs in its own process (ctest), so the class registry
// starts empty in every test.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "xoscar/module.h"
#include "xoscar/xoscar.h"

namespace {

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

}  // namespace

#ifdef XO_TEST_NOEXPORT_HOST
// Built into a program that links the runtime statically and exports nothing: modules cannot reach its runtime.

// A module that does not link libxoscar finds no runtime at all: dlopen names the missing symbol.
TEST(ModuleNoExportHost, UnlinkedModuleFailsToLoad)
{
    const xo_module_v1_t *m = nullptr;
    EXPECT_EQ(xo_module_load(XO_TEST_MODULE_PATH, &m), XO_EINVAL);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, std::string("module ") + XO_TEST_MODULE_PATH + " cannot be loaded: ")) << e;
    EXPECT_TRUE(has(e, "undefined symbol: xo_")) << e;
    EXPECT_EQ(m, nullptr);
}

// A module that links libxoscar.so would call that second copy: refused, naming both copies.
TEST(ModuleNoExportHost, ModuleBoundToAnotherRuntimeIsRefused)
{
    const xo_module_v1_t *m = nullptr;
    EXPECT_EQ(xo_module_load(XO_TEST_LINKED_MODULE_PATH, &m), XO_ECONFIG);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, std::string("module ") + XO_TEST_LINKED_MODULE_PATH + " uses the xoscar runtime in ")) << e;
    EXPECT_TRUE(has(e, "/libxoscar.so.")) << e;  // the versioned shared library the module linked
    EXPECT_TRUE(has(e, ", not this process's (in ")) << e;
    EXPECT_TRUE(has(e, "runtime_module_noexport)")) << e;  // this program, where our runtime lives
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(xo_module_loaded("test_actors"), nullptr);
}
#else

namespace {

class ModuleTest : public ::testing::Test {
  protected:
    void SetUp() override
    {
        ASSERT_EQ(xo_module_load(XO_TEST_MODULE_PATH, &mod), XO_OK) << xo_last_error();
        xo_pool_config_t cfg{};
        cfg.n_threads = 1;  // one thread: a sleep that blocked it would serialise the concurrent sleeps below
        ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
        addr = xo_pool_address(pool);
    }
    void TearDown() override
    {
        if (pool) xo_pool_stop(pool);
    }
    xo_ref_t *create(const char *cls, const char *uid, xo_args_t *args = nullptr)
    {
        xo_ref_t *ref = nullptr;
        EXPECT_EQ(xo_create_actor_by_name(cls, args, addr.c_str(), uid, &ref), XO_OK) << xo_last_error();
        return ref;
    }
    int64_t call_i64(xo_ref_t *ref, const char *method, xo_args_t *args = nullptr)
    {
        xo_result_t *r = nullptr;
        xo_status_t st = xo_call(ref, method, args, 5000, &r);
        EXPECT_EQ(st, XO_OK) << method << ": " << xo_last_error();
        int64_t v = -1;
        if (st == XO_OK) {
            EXPECT_EQ(xo_result_unpack(r, "l", &v), XO_OK) << xo_last_error();
            xo_result_free(r);
        }
        return v;
    }

    const xo_module_v1_t *mod = nullptr;
    xo_pool_t *pool = nullptr;
    std::string addr;
};

}  // namespace

TEST_F(ModuleTest, DescriptorAndLookup)
{
    ASSERT_NE(mod, nullptr);
    EXPECT_EQ(mod->abi_version, XO_MODULE_ABI_V1);
    EXPECT_STREQ(mod->name, "test_actors");
    ASSERT_EQ(mod->n_classes, 8u);
    EXPECT_STREQ(mod->classes[0]->name, "Counter");
    EXPECT_STREQ(mod->classes[1]->name, "Echo");
    EXPECT_STREQ(mod->classes[2]->name, "Sum");
    EXPECT_EQ(xo_module_loaded("test_actors"), mod);
    EXPECT_EQ(xo_module_loaded("nope"), nullptr);
}

TEST_F(ModuleTest, CounterByName)
{
    xo_ref_t *c = create("Counter", "c1", xo_args("l", (int64_t)10));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(call_i64(c, "add", xo_args("l", (int64_t)5)), 15);
    EXPECT_EQ(call_i64(c, "add", xo_args("l", (int64_t)-3)), 12);
    EXPECT_EQ(call_i64(c, "get"), 12);
    // The module's class is the registered one: creating by pointer reaches the same class.
    xo_ref_t *c2 = nullptr;
    ASSERT_EQ(xo_create_actor(mod->classes[0], nullptr, addr.c_str(), "c2", &c2), XO_OK) << xo_last_error();
    EXPECT_EQ(call_i64(c2, "get"), 0);
    xo_ref_free(c2);
    xo_ref_free(c);
}

TEST_F(ModuleTest, CreateByUnknownName)
{
    xo_ref_t *ref = nullptr;
    EXPECT_EQ(xo_create_actor_by_name("NoSuchClass", xo_args("i", 1), addr.c_str(), nullptr, &ref), XO_ENOCLASS);
    EXPECT_TRUE(has(xo_last_error(), "NoSuchClass")) << xo_last_error();
    EXPECT_EQ(ref, nullptr);
}

TEST_F(ModuleTest, EchoValuesAndPid)
{
    xo_ref_t *e = create("Echo", "e");
    ASSERT_NE(e, nullptr);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(e, "echo", xo_args("[isd]", 7, "seven", 7.5), 5000, &r), XO_OK) << xo_last_error();
    int i = 0;
    xo_str_t s{};
    double d = 0;
    ASSERT_EQ(xo_result_unpack(r, "[isd]", &i, &s, &d), XO_OK) << xo_last_error();
    EXPECT_EQ(i, 7);
    EXPECT_EQ(std::string(s.ptr, s.len), "seven");
    EXPECT_EQ(d, 7.5);
    xo_result_free(r);
    EXPECT_EQ(call_i64(e, "pid"), (int64_t)getpid());
    // A method's error travels back: echo needs one argument.
    EXPECT_EQ(xo_call(e, "echo", nullptr, 5000, nullptr), XO_EBADARGS);
    xo_ref_free(e);
}

// The module's calls reach this process's runtime, not a second copy: xo_ctx_current() inside the module is the
// method's ctx, and xo_sleep_ms suspends only the method (two sleeps overlap on a one-thread pool).
TEST_F(ModuleTest, ModuleSharesTheHostRuntime)
{
    xo_ref_t *e = create("Echo", "e");
    ASSERT_NE(e, nullptr);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(e, "in_runtime", nullptr, 5000, &r), XO_OK) << xo_last_error();
    bool same = false;
    ASSERT_EQ(xo_result_unpack(r, "t", &same), XO_OK);
    EXPECT_TRUE(same);
    xo_result_free(r);

    auto t0 = std::chrono::steady_clock::now();
    xo_future_t *f1 = nullptr, *f2 = nullptr;
    ASSERT_EQ(xo_send(e, "sleep_ms", xo_args("l", (int64_t)300), &f1), XO_OK);
    ASSERT_EQ(xo_send(e, "sleep_ms", xo_args("l", (int64_t)300), &f2), XO_OK);
    for (xo_future_t *f : {f1, f2}) {
        xo_result_t *res = nullptr;
        ASSERT_EQ(xo_future_wait(f, 5000, &res), XO_OK) << xo_last_error();
        int64_t ms = 0;
        EXPECT_EQ(xo_result_unpack(res, "l", &ms), XO_OK);
        EXPECT_EQ(ms, 300);
        xo_result_free(res);
        xo_future_free(f);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_GE(ms, 300);
    EXPECT_LT(ms, 550) << "the sleeps ran one after the other: the module's xo_sleep_ms blocked the thread";
    xo_ref_free(e);
}

TEST_F(ModuleTest, SumBatch)
{
    xo_ref_t *s = create("Sum", "s");
    ASSERT_NE(s, nullptr);
    xo_delayed_t *calls[3] = {xo_delay("add", xo_args("l", (int64_t)1)), xo_delay("add", xo_args("l", (int64_t)2)),
                              xo_delay("add", xo_args("l", (int64_t)3))};
    xo_status_t st[3];
    xo_result_t *res[3] = {};
    ASSERT_EQ(xo_batch(s, calls, 3, 5000, st, res, nullptr), XO_OK) << xo_last_error();
    int64_t want[3] = {1, 3, 6};
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(st[i], XO_OK) << i;
        int64_t v = 0;
        EXPECT_EQ(xo_result_unpack(res[i], "l", &v), XO_OK);
        EXPECT_EQ(v, want[i]);
        xo_result_free(res[i]);
    }
    EXPECT_EQ(call_i64(s, "batches"), 1);
    EXPECT_EQ(call_i64(s, "add", xo_args("l", (int64_t)4)), 10);  // a single call is a batch of one
    EXPECT_EQ(call_i64(s, "batches"), 2);
    xo_ref_free(s);
}

// A method that kills its process: the death tests of multi-process pools rely on it.
TEST_F(ModuleTest, CrashKillsTheProcess)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    xo_ref_t *e = create("Echo", "e");
    ASSERT_NE(e, nullptr);
    EXPECT_EXIT(xo_call(e, "crash", nullptr, 5000, nullptr), ::testing::KilledBySignal(SIGKILL), "");
    xo_ref_free(e);
}

// ---- loading ---------------------------------------------------------------------------------------------------

TEST(ModuleLoad, TwiceIsIdempotent)
{
    const xo_module_v1_t *a = nullptr, *b = nullptr, *c = nullptr;
    ASSERT_EQ(xo_module_load(XO_TEST_MODULE_PATH, &a), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_module_load(XO_TEST_MODULE_PATH, &b), XO_OK) << xo_last_error();
    EXPECT_EQ(a, b);
    // Another spelling of the same file is the same module.
    std::string path = XO_TEST_MODULE_PATH;
    std::string other = path.substr(0, path.rfind('/')) + "/./" + path.substr(path.rfind('/') + 1);
    ASSERT_EQ(xo_module_load(other.c_str(), &c), XO_OK) << xo_last_error();
    EXPECT_EQ(a, c);
    EXPECT_EQ(xo_module_load(XO_TEST_MODULE_PATH, nullptr), XO_OK);
}

// A module that links libxoscar.so is fine where that library is, or binds to, this process's runtime.
TEST(ModuleLoad, LinkedModuleBindsToThisRuntime)
{
    ASSERT_EQ(xo_module_load(XO_TEST_LINKED_MODULE_PATH, nullptr), XO_OK) << xo_last_error();
    xo_pool_t *pool = nullptr;
    ASSERT_EQ(xo_pool_start(nullptr, &pool), XO_OK) << xo_last_error();
    xo_ref_t *e = nullptr;
    ASSERT_EQ(xo_create_actor_by_name("Echo", nullptr, xo_pool_address(pool), "e", &e), XO_OK) << xo_last_error();
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(e, "in_runtime", nullptr, 5000, &r), XO_OK) << xo_last_error();
    bool same = false;
    ASSERT_EQ(xo_result_unpack(r, "t", &same), XO_OK);
    EXPECT_TRUE(same);
    xo_result_free(r);
    xo_ref_free(e);
    xo_pool_stop(pool);
}

TEST(ModuleLoad, BadPath)
{
    const xo_module_v1_t *m = nullptr;
    EXPECT_EQ(xo_module_load("/nonexistent/libnothing.so", &m), XO_EINVAL);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, "module /nonexistent/libnothing.so cannot be loaded: ")) << e;
    EXPECT_TRUE(has(e, "No such file")) << e;  // dlerror()'s text
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(xo_module_load("", &m), XO_EINVAL);
    EXPECT_EQ(xo_module_load(nullptr, &m), XO_EINVAL);
}

TEST(ModuleLoad, FutureAbiRefused)
{
    const xo_module_v1_t *m = nullptr;
    EXPECT_EQ(xo_module_load(XO_TEST_BAD_ABI_PATH, &m), XO_ENOTSUP);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, XO_TEST_BAD_ABI_PATH)) << e;
    EXPECT_TRUE(has(e, "has abi_version 2; this runtime loads abi_version 1 only")) << e;
    EXPECT_EQ(m, nullptr);
    EXPECT_EQ(xo_module_loaded("future"), nullptr);
    // Nothing of it was registered: its "Counter" is not there, so the real one loads.
    ASSERT_EQ(xo_module_load(XO_TEST_MODULE_PATH, &m), XO_OK) << xo_last_error();
    // Still refused when tried again.
    EXPECT_EQ(xo_module_load(XO_TEST_BAD_ABI_PATH, nullptr), XO_ENOTSUP);
}

TEST(ModuleLoad, MissingSymbol)
{
    EXPECT_EQ(xo_module_load(XO_TEST_BAD_NOSYM_PATH, nullptr), XO_EINVAL);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, std::string("module ") + XO_TEST_BAD_NOSYM_PATH + " does not export xo_module_v1: ")) << e;
    EXPECT_TRUE(has(e, "undefined symbol")) << e;  // dlerror()'s text
}

TEST(ModuleLoad, ClassConflictBetweenModules)
{
    ASSERT_EQ(xo_module_load(XO_TEST_MODULE_PATH, nullptr), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_module_load(XO_TEST_BAD_CONFLICT_PATH, nullptr), XO_EEXIST);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, std::string("module ") + XO_TEST_BAD_CONFLICT_PATH + " (conflict): class Counter")) << e;
    EXPECT_TRUE(has(e, std::string("module test_actors (") + XO_TEST_MODULE_PATH + ")")) << e;
    EXPECT_EQ(xo_module_loaded("conflict"), nullptr);
}

TEST(ModuleLoad, ClassConflictWithTheProgram)
{
    static const xo_method_t methods[] = {{"get", [](xo_ctx_t *, void *, const msgpack_object *, msgpack_packer *) {
                                               return XO_OK;
                                           },
                                           nullptr, 0}};
    static const xo_actor_class_t mine = {XO_CLASS_ABI_V1, XO_ACTOR_STATEFUL, "Counter", 0, nullptr, nullptr,
                                          nullptr, nullptr, methods, 1};
    ASSERT_EQ(xo_register_class(&mine), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_module_load(XO_TEST_MODULE_PATH, nullptr), XO_EEXIST);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, "class Counter conflicts with class Counter already registered by the program")) << e;
    EXPECT_TRUE(has(e, XO_TEST_MODULE_PATH)) << e;
    // Refused as a whole: its other classes were not registered either.
    xo_ref_t *ref = nullptr;
    EXPECT_EQ(xo_create_actor_by_name("Echo", nullptr, nullptr, nullptr, &ref), XO_ENOCLASS);
}
#endif
