// Fibers: switching, deep stacks, many fibers, and floating-point state across switches.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "runtime/fiber.h"
}

namespace {

struct PingPong {
    xo_fiber_t *main;
    xo_fiber_t *self;
    int counter;
};

void ping_entry(void *arg)
{
    auto *p = static_cast<PingPong *>(arg);
    for (;;) {
        p->counter++;
        xo__fiber_switch(p->self, p->main);
    }
}

TEST(Fiber, SwitchesBackAndForth)
{
    PingPong p{};
    p.main = xo__fiber_for_thread();
    p.self = xo__fiber_create(64 * 1024, ping_entry, &p);
    ASSERT_TRUE(p.main && p.self);
    for (int i = 1; i <= 1000; i++) {
        xo__fiber_switch(p.main, p.self);
        ASSERT_EQ(p.counter, i);
    }
    xo__fiber_destroy(p.self);
    xo__fiber_destroy(p.main);
}

int recurse(int depth)
{
    volatile char pad[512];
    memset((char *)pad, depth & 0xff, sizeof pad);
    return depth == 0 ? pad[3] : recurse(depth - 1) + 1;
}

struct Deep {
    xo_fiber_t *main, *self;
    int result;
    double fp;
};

void deep_entry(void *arg)
{
    auto *d = static_cast<Deep *>(arg);
    d->result = recurse(200); // ~100 KiB of stack
    d->fp = std::sqrt(2.0) * std::exp(1.0);
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", d->fp); // varargs with doubles: needs an aligned stack
    d->fp = atof(buf);
    xo__fiber_switch(d->self, d->main);
    abort();
}

TEST(Fiber, DeepStackAndAlignedCalls)
{
    Deep d{};
    d.main = xo__fiber_for_thread();
    d.self = xo__fiber_create(256 * 1024, deep_entry, &d);
    xo__fiber_switch(d.main, d.self);
    EXPECT_EQ(d.result, 200);
    EXPECT_NEAR(d.fp, 3.844, 1e-3);
    xo__fiber_destroy(d.self);
    xo__fiber_destroy(d.main);
}

TEST(Fiber, ManyFibersOnSeveralThreads)
{
    std::vector<std::thread> ts;
    std::atomic<int> total{0};
    for (int t = 0; t < 2; t++)
        ts.emplace_back([&] {
            std::vector<PingPong> ps(200);
            xo_fiber_t *main = xo__fiber_for_thread();
            for (auto &p : ps) {
                p.main = main;
                p.self = xo__fiber_create(32 * 1024, ping_entry, &p);
            }
            for (int round = 0; round < 50; round++)
                for (auto &p : ps) xo__fiber_switch(main, p.self);
            for (auto &p : ps) {
                total += p.counter;
                xo__fiber_destroy(p.self);
            }
            xo__fiber_destroy(main);
        });
    for (auto &t : ts) t.join();
    EXPECT_EQ(total.load(), 2 * 200 * 50);
}

TEST(Fiber, BackendIsReported)
{
    std::string b = xo__fiber_backend();
    EXPECT_TRUE(b == "x86_64-asm" || b == "ucontext") << b;
}

} // namespace
