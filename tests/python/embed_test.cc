// python/embed: Python actor classes loaded with xo_module_load("python:...") into this process (a pool of its own,
// no cluster), created and called from C: values, sync and async methods, hooks, errors (the process lives), a
// Python method calling a C actor of this process, and the stateless class's concurrent waits. Each test case runs
// in its own process (ctest), so each starts its own interpreter. The cluster-level tests are pytest's
// (python/tests/test_pyactors.py).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "xoscar/module.h"
#include "xoscar/xoscar.h"

namespace {

// A C actor for Python to call: add(n) -> total.
xo_status_t cadd(xo_ctx_t *, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n = 0;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    *static_cast<int64_t *>(state) += n;
    return xo_pack(out, "l", *static_cast<int64_t *>(state));
}
const xo_method_t cmethods[] = {{"add", cadd, nullptr, 0}};
const xo_actor_class_t cclass = {XO_CLASS_ABI_V1, XO_ACTOR_STATEFUL, "CAdder", sizeof(int64_t), nullptr, nullptr,
                                 nullptr, nullptr, cmethods, 1};

class PythonEmbed : public ::testing::Test {
protected:
    void SetUp() override
    {
        setenv("PYTHONPATH", XO_TEST_PY_DIR, 1);       // pyactors/basic.py
        setenv("XO_PYTHON_PLUGIN", XO_TEST_PY_PLUGIN, 1);
        unsetenv("XO_PYTHON");                           // the embedded interpreter's own prefix; xoscar_c from
                                                         // the source tree (the plugin's fallback)
        xo_pool_config_t cfg{};
        cfg.n_threads = 2;
        cfg.fiber_stack_size = 1u << 20;
        ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
        const xo_module_v1_t *mod = nullptr;
        ASSERT_EQ(xo_module_load("python:pyactors.basic", &mod), XO_OK) << xo_last_error();
        ASSERT_STREQ(mod->name, "python:pyactors.basic");
    }
    void TearDown() override
    {
        if (pool) xo_pool_stop(pool);
    }
    xo_ref_t *create(const char *cls, xo_args_t *args)
    {
        xo_ref_t *r = nullptr;
        EXPECT_EQ(xo_create_actor_by_name(cls, args, xo_pool_address(pool), nullptr, &r), XO_OK) << xo_last_error();
        return r;
    }
    static int64_t call_l(xo_ref_t *r, const char *m, xo_args_t *a)
    {
        xo_result_t *res = nullptr;
        xo_status_t st = xo_call(r, m, a, 10000, &res);
        EXPECT_EQ(st, XO_OK) << m << ": " << xo_last_error();
        int64_t v = -1;
        if (st == XO_OK) {
            EXPECT_EQ(xo_result_unpack(res, "l", &v), XO_OK);
        }
        xo_result_free(res);
        return v;
    }
    xo_pool_t *pool = nullptr;
};

TEST_F(PythonEmbed, SyncAndAsyncMethodsAndHooks)
{
    const xo_module_v1_t *again = nullptr;
    ASSERT_EQ(xo_module_load("python:pyactors.basic", &again), XO_OK);  // loaded once
    EXPECT_EQ(again, xo_module_loaded("python:pyactors.basic"));
    xo_ref_t *c = create("PyCounter", xo_args("i", 40));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(call_l(c, "add", xo_args("i", 2)), 42);
    EXPECT_EQ(call_l(c, "add_slowly", xo_args("ii", 1, 5)), 43);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(c, "hooks", nullptr, 10000, &r), XO_OK) << xo_last_error();
    xo_str_t s{};
    EXPECT_EQ(xo_result_unpack(r, "[s]", &s), XO_OK);
    EXPECT_TRUE(xo_str_eq(s, "post_create"));
    xo_result_free(r);
    EXPECT_EQ(xo_call(c, "nosuch", nullptr, 10000, nullptr), XO_ENOMETHOD);
    EXPECT_EQ(xo_destroy_actor(c), XO_OK);
    EXPECT_FALSE(xo_has_actor(c));
    xo_ref_free(c);
}

TEST_F(PythonEmbed, ExceptionsBecomeErrorsAndTheProcessLives)
{
    xo_ref_t *c = create("PyCounter", nullptr);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(xo_call(c, "fail", xo_args("s", "boom"), 10000, nullptr), XO_EMETHOD);
    EXPECT_STREQ(xo_last_error(), "ValueError: boom");
    EXPECT_EQ(xo_call(c, "fail_async", xo_args("s", "k"), 10000, nullptr), XO_EMETHOD);
    EXPECT_STREQ(xo_last_error(), "KeyError: 'k'");
    EXPECT_EQ(xo_call(c, "await_asyncio", nullptr, 10000, nullptr), XO_EMETHOD);
    EXPECT_NE(std::string(xo_last_error()).find("RuntimeError"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_call(c, "unpackable", nullptr, 10000, nullptr), XO_EMETHOD);
    EXPECT_NE(std::string(xo_last_error()).find("TypeError"), std::string::npos) << xo_last_error();
    xo_ref_t *bad = nullptr;
    EXPECT_EQ(xo_create_actor_by_name("PyCounter", xo_args("iii", 1, 2, 3), xo_pool_address(pool), nullptr, &bad),
              XO_EHOOK);
    EXPECT_NE(std::string(xo_last_error()).find("TypeError"), std::string::npos) << xo_last_error();
    EXPECT_EQ(call_l(c, "add", xo_args("i", 1)), 1);  // still serving
    xo_ref_free(c);
}

TEST_F(PythonEmbed, PythonCallsCAndCCallsPython)
{
    xo_ref_t *adder = nullptr;
    ASSERT_EQ(xo_create_actor(&cclass, nullptr, xo_pool_address(pool), "adder", &adder), XO_OK);
    xo_ref_t *relay = create("Relay", nullptr);
    ASSERT_NE(relay, nullptr);
    EXPECT_EQ(call_l(relay, "call", xo_args("sssi", xo_pool_address(pool), "adder", "add", 5)), 5);
    EXPECT_EQ(call_l(relay, "call_sync", xo_args("sssi", xo_pool_address(pool), "adder", "add", 5)), 10);
    // a call that fails below keeps its status through the Python method
    EXPECT_EQ(xo_call(relay, "call", xo_args("sss", xo_pool_address(pool), "nobody", "add"), 10000, nullptr),
              XO_ENOACTOR);
    xo_ref_free(adder);
    xo_ref_free(relay);
}

TEST_F(PythonEmbed, StatelessWaitsOverlap)
{
    xo_ref_t *p = create("Pinger", nullptr);
    ASSERT_NE(p, nullptr);
    xo_future_t *fs[8];
    auto t0 = std::chrono::steady_clock::now();
    for (auto &f : fs) ASSERT_EQ(xo_send(p, "nap", xo_args("i", 200), &f), XO_OK);
    for (auto &f : fs) {
        EXPECT_EQ(xo_future_wait(f, 10000, nullptr), XO_OK) << xo_last_error();
        xo_future_free(f);
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 1.0);  // 8 x 200 ms one after the other would be 1.6 s
    xo_ref_free(p);
}

TEST(PythonEmbedLoad, AModuleThatDoesNotImportIsRefusedWithItsReason)
{
    setenv("PYTHONPATH", XO_TEST_PY_DIR, 1);
    setenv("XO_PYTHON_PLUGIN", XO_TEST_PY_PLUGIN, 1);
    EXPECT_EQ(xo_module_load("python:pyactors.nosuch", nullptr), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("No module named 'pyactors.nosuch'"), std::string::npos)
        << xo_last_error();
    EXPECT_EQ(xo_module_load("python:json", nullptr), XO_EINVAL);  // imports, but has no actor class
    EXPECT_NE(std::string(xo_last_error()).find("defines no actor class"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_module_load("python:", nullptr), XO_EINVAL);
}

TEST(PythonEmbedLoad, AMissingPluginIsNamed)
{
    setenv("XO_PYTHON_PLUGIN", "/nonexistent/libxoscar_python.so", 1);
    EXPECT_EQ(xo_module_load("python:pyactors.basic", nullptr), XO_ENOTSUP);
    EXPECT_NE(std::string(xo_last_error()).find("/nonexistent/libxoscar_python.so"), std::string::npos)
        << xo_last_error();
}

}  // namespace
