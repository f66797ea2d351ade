// Shared by the runtime suites: a pool per test, and small helpers to call and read results.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "xoscar/xoscar.h"

class PoolTest : public ::testing::Test {
  protected:
    void SetUp() override
    {
        xo_pool_config_t cfg{};
        cfg.n_threads = threads();
        ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
        addr = xo_pool_address(pool);
    }
    void TearDown() override
    {
        if (pool) xo_pool_stop(pool);
    }
    virtual unsigned threads() const { return 2; }

    xo_ref_t *create(const xo_actor_class_t *cls, const char *uid, xo_args_t *args = nullptr)
    {
        xo_ref_t *ref = nullptr;
        xo_status_t st = xo_create_actor(cls, args, addr.c_str(), uid, &ref);
        EXPECT_EQ(st, XO_OK) << xo_last_error();
        return ref;
    }

    xo_pool_t *pool = nullptr;
    std::string addr;
};

// Calls method and returns its int64 result (or fails the test).
inline int64_t call_i64(const xo_ref_t *ref, const char *method, xo_args_t *args = nullptr, int64_t timeout_ms = 5000)
{
    xo_result_t *r = nullptr;
    xo_status_t st = xo_call(ref, method, args, timeout_ms, &r);
    EXPECT_EQ(st, XO_OK) << method << ": " << xo_last_error();
    int64_t v = -1;
    if (st == XO_OK) {
        EXPECT_EQ(xo_result_unpack(r, "l", &v), XO_OK) << xo_last_error();
        xo_result_free(r);
    }
    return v;
}

inline std::string call_str(const xo_ref_t *ref, const char *method, xo_args_t *args = nullptr)
{
    xo_result_t *r = nullptr;
    xo_status_t st = xo_call(ref, method, args, 5000, &r);
    EXPECT_EQ(st, XO_OK) << method << ": " << xo_last_error();
    if (st != XO_OK) return "";
    xo_str_t s{};
    EXPECT_EQ(xo_result_unpack(r, "s", &s), XO_OK);
    std::string out(s.ptr, s.len);
    xo_result_free(r);
    return out;
}

inline std::string to_string(xo_str_t s) { return std::string(s.ptr, s.len); }

inline double now_ms()
{
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Designated initialisers keep class tables readable; GCC and Clang accept them in C++17 as an extension.
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
