// XO_METHOD_NO_LOCK (Xoscar's no_lock): such a method of a stateful actor runs while another method of the actor
// waits, and does not hold the actor while it waits itself; plain methods still take one turn at a time.
#include <atomic>
#include <thread>

#include "tests/runtime/pool_fixture.h"

namespace {

struct Gate {
    xo_future_t *gate; // set while wait() is suspended on it
    int64_t plain_runs;
    int64_t plain_runs_while_waiting;
};

// Holds the actor's turn while it waits for release().
xo_status_t gate_wait(xo_ctx_t *ctx, void *state, const msgpack_object *, msgpack_packer *out)
{
    auto *g = static_cast<Gate *>(state);
    xo_future_t *f = xo_promise_new();
    g->gate = f;
    xo_status_t st = xo_future_wait(f, 2000, nullptr);
    g->gate = nullptr;
    xo_future_free(f);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "the gate was not released");
    return xo_pack(out, "l", (int64_t)1);
}

xo_status_t gate_release(xo_ctx_t *, void *state, const msgpack_object *, msgpack_packer *out)
{
    auto *g = static_cast<Gate *>(state);
    bool had = g->gate != nullptr;
    if (had) xo_promise_resolve(g->gate, nullptr);
    return xo_pack(out, "t", (int)had);
}

xo_status_t gate_waiting(xo_ctx_t *, void *state, const msgpack_object *, msgpack_packer *out)
{
    return xo_pack(out, "t", (int)(static_cast<Gate *>(state)->gate != nullptr));
}

xo_status_t gate_plain(xo_ctx_t *, void *state, const msgpack_object *, msgpack_packer *out)
{
    auto *g = static_cast<Gate *>(state);
    if (g->gate) g->plain_runs_while_waiting++;
    return xo_pack(out, "l", ++g->plain_runs);
}

xo_status_t gate_stats(xo_ctx_t *, void *state, const msgpack_object *, msgpack_packer *out)
{
    return xo_pack(out, "l", static_cast<Gate *>(state)->plain_runs_while_waiting);
}

// Waits without holding the actor.
xo_status_t gate_nap(xo_ctx_t *ctx, void *, const msgpack_object *, msgpack_packer *out)
{
    xo_status_t st = xo_sleep_ms(400);
    return st != XO_OK ? st : xo_pack(out, "l", (int64_t)1);
}

const xo_method_t gate_methods[] = {
    {.name = "wait", .fn = gate_wait},
    {.name = "release", .fn = gate_release, .flags = XO_METHOD_NO_LOCK},
    {.name = "waiting", .fn = gate_waiting, .flags = XO_METHOD_NO_LOCK},
    {.name = "plain", .fn = gate_plain},
    {.name = "stats", .fn = gate_stats},
    {.name = "nap", .fn = gate_nap, .flags = XO_METHOD_NO_LOCK},
};
const xo_actor_class_t gate_class = {.abi_version = XO_CLASS_ABI_V1,
                                     .name = "Gate",
                                     .state_size = sizeof(Gate),
                                     .methods = gate_methods,
                                     .n_methods = sizeof gate_methods / sizeof gate_methods[0]};

bool call_bool(const xo_ref_t *ref, const char *method)
{
    xo_result_t *r = nullptr;
    xo_status_t st = xo_call(ref, method, nullptr, 1000, &r);
    EXPECT_EQ(st, XO_OK) << method << ": " << xo_last_error();
    bool v = false;
    if (st == XO_OK) {
        EXPECT_EQ(xo_result_unpack(r, "t", &v), XO_OK);
        xo_result_free(r);
    }
    return v;
}

// Polls the no_lock "waiting" until wait() is suspended on its gate.
bool until_waiting(const xo_ref_t *ref)
{
    for (int i = 0; i < 200; i++) {
        if (call_bool(ref, "waiting")) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

using NoLock = PoolTest;

TEST_F(NoLock, ANoLockMethodReleasesAMethodThatHoldsTheActor)
{
    xo_ref_t *ref = create(&gate_class, "gate");
    std::atomic<xo_status_t> waited{XO_INPROGRESS};
    double t0 = now_ms();
    std::thread waiter([&] { waited = xo_call(ref, "wait", nullptr, 5000, nullptr); });
    ASSERT_TRUE(until_waiting(ref)) << "a no_lock query did not get in while wait() held the actor";
    EXPECT_TRUE(call_bool(ref, "release"));
    waiter.join();
    EXPECT_EQ(waited.load(), XO_OK) << xo_last_error();
    EXPECT_LT(now_ms() - t0, 1500) << "wait() ran out its own timeout: release() was kept out";
    xo_ref_free(ref);
}

TEST_F(NoLock, PlainMethodsStillWaitForTheTurnOfAMethodThatWaits)
{
    xo_ref_t *ref = create(&gate_class, "gate");
    std::thread waiter([&] { EXPECT_EQ(xo_call(ref, "wait", nullptr, 5000, nullptr), XO_OK) << xo_last_error(); });
    ASSERT_TRUE(until_waiting(ref));
    xo_future_t *plain = nullptr;
    ASSERT_EQ(xo_send(ref, "plain", nullptr, &plain), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_FALSE(xo_future_done(plain)) << "a plain method ran while wait() held the actor";
    EXPECT_TRUE(call_bool(ref, "release"));
    EXPECT_EQ(xo_future_wait(plain, 2000, nullptr), XO_OK) << xo_last_error();
    xo_future_free(plain);
    waiter.join();
    EXPECT_EQ(call_i64(ref, "stats"), 0);
    xo_ref_free(ref);
}

TEST_F(NoLock, ANoLockMethodThatWaitsDoesNotHoldTheActor)
{
    xo_ref_t *ref = create(&gate_class, "gate");
    xo_future_t *nap = nullptr;
    ASSERT_EQ(xo_send(ref, "nap", nullptr, &nap), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // nap() is asleep by now
    double t0 = now_ms();
    EXPECT_EQ(call_i64(ref, "plain"), 1);
    EXPECT_LT(now_ms() - t0, 300) << "a plain call waited for a sleeping no_lock method";
    EXPECT_FALSE(xo_future_done(nap));
    EXPECT_EQ(xo_future_wait(nap, 2000, nullptr), XO_OK);
    xo_future_free(nap);
    xo_ref_free(ref);
}

} // namespace
