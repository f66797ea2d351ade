// Cancellation always answers the caller: cancelled before it ran, or whatever the method made of it.
#include <atomic>
#include <string>
#include <thread>

#include <unistd.h>

#include "tests/runtime/pool_fixture.h"

namespace {

std::atomic<int> slept_through{0};
std::atomic<int> sleeps_cancelled{0};
std::atomic<int> started{0}; // methods that began running: tests cancel only once the target is really running

// Waits (up to 5 s) until n methods have started: a loaded machine may take longer than any fixed sleep.
void wait_started(int n)
{
    for (int i = 0; i < 5000 && started.load() < n; i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// sleep(ms, value): sleeps (suspending); when cancelled returns value + 1, as Xoscar's tested semantics do.
xo_status_t sl_sleep(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int ms, value;
    xo_status_t st = xo_unpack(args, "ii", &ms, &value);
    if (st != XO_OK) return st;
    started++;
    st = xo_sleep_ms(ms);
    if (st == XO_ECANCELED) {
        sleeps_cancelled++;
        return xo_pack(out, "i", value + 1);
    }
    slept_through++;
    return xo_pack(out, "i", value);
}

// forward(ms, value): calls "sleep" on the actor named "inner" and returns what it returns.
xo_status_t sl_forward(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int ms, value;
    xo_status_t st = xo_unpack(args, "ii", &ms, &value);
    if (st != XO_OK) return st;
    xo_ref_t *inner = nullptr;
    st = xo_actor_ref(xo_ctx_address(ctx), "inner", &inner);
    if (st != XO_OK) return st;
    xo_result_t *r = nullptr;
    st = xo_call(inner, "sleep", xo_args("ii", ms, value), XO_FOREVER, &r);
    xo_ref_free(inner);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "forward: inner call ended with %s", xo_status_name(st));
    int v = 0;
    xo_result_unpack(r, "i", &v);
    xo_result_free(r);
    return xo_pack(out, "i", v * 10);
}

// spin(ms): busy (no suspension) for ms, then reports whether it saw the cancel flag.
xo_status_t sl_spin(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int ms;
    xo_status_t st = xo_unpack(args, "i", &ms);
    if (st != XO_OK) return st;
    started++;
    double until = now_ms() + ms;
    while (now_ms() < until) {
    }
    return xo_pack(out, "t", (int)xo_ctx_cancelled(ctx));
}

const xo_method_t sl_methods[] = {
    {.name = "sleep", .fn = sl_sleep}, {.name = "forward", .fn = sl_forward}, {.name = "spin", .fn = sl_spin}};
const xo_actor_class_t sl_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Sleeper", .methods = sl_methods, .n_methods = 3};

class Cancel : public PoolTest {
  protected:
    void SetUp() override
    {
        PoolTest::SetUp();
        slept_through = 0;
        sleeps_cancelled = 0;
        started = 0;
    }
};

TEST_F(Cancel, QueuedCallIsAnsweredCancelledAndNeverRuns)
{
    xo_ref_t *a = create(&sl_class, "a");
    xo_future_t *busy = nullptr, *queued = nullptr;
    ASSERT_EQ(xo_send(a, "spin", xo_args("i", 100), &busy), XO_OK);
    ASSERT_EQ(xo_send(a, "sleep", xo_args("ii", 0, 7), &queued), XO_OK);
    xo_future_cancel(queued);
    EXPECT_EQ(xo_future_wait(queued, 5000, nullptr), XO_ECANCELED);
    EXPECT_EQ(xo_future_wait(busy, 5000, nullptr), XO_OK);
    EXPECT_EQ(slept_through.load() + sleeps_cancelled.load(), 0) << "a cancelled queued call ran";
    xo_future_free(busy);
    xo_future_free(queued);
    xo_ref_free(a);
}

TEST_F(Cancel, RunningMethodSeesTheCancelAndItsValueReachesTheCaller)
{
    xo_ref_t *a = create(&sl_class, "a");
    xo_future_t *f = nullptr;
    double t0 = now_ms();
    ASSERT_EQ(xo_send(a, "sleep", xo_args("ii", 5000, 41), &f), XO_OK);
    wait_started(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5)); /* into its sleep */
    xo_future_cancel(f);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_future_wait(f, 5000, &r), XO_OK) << xo_last_error();
    int v = 0;
    xo_result_unpack(r, "i", &v);
    EXPECT_EQ(v, 42);
    EXPECT_LT(now_ms() - t0, 2000.0);
    EXPECT_EQ(sleeps_cancelled.load(), 1);
    xo_result_free(r);
    xo_future_free(f);
    xo_ref_free(a);
}

TEST_F(Cancel, CancelReachesDownTheCallChain)
{
    xo_ref_t *outer = create(&sl_class, "outer");
    xo_ref_t *inner = create(&sl_class, "inner");
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_send(outer, "forward", xo_args("ii", 5000, 1), &f), XO_OK);
    wait_started(1); /* the inner sleep began: the outer method is waiting on it */
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    xo_future_cancel(f);
    xo_result_t *r = nullptr;
    // The outer wait is cancelled at once, so forward reports the cancelled inner call; the inner sleep is cancelled
    // too (it answers value + 1, which nobody is waiting for any more).
    EXPECT_EQ(xo_future_wait(f, 5000, &r), XO_ECANCELED);
    EXPECT_NE(std::string(xo_last_error()).find("forward: inner call ended"), std::string::npos) << xo_last_error();
    for (int i = 0; i < 200 && sleeps_cancelled.load() == 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(sleeps_cancelled.load(), 1);
    xo_future_free(f);
    xo_ref_free(outer);
    xo_ref_free(inner);
}

TEST_F(Cancel, BusyMethodFinishesAndCanSeeTheFlag)
{
    xo_ref_t *a = create(&sl_class, "a");
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_send(a, "spin", xo_args("i", 80), &f), XO_OK);
    wait_started(1);
    xo_future_cancel(f);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_future_wait(f, 5000, &r), XO_OK);
    bool saw = false;
    xo_result_unpack(r, "t", &saw);
    EXPECT_TRUE(saw);
    xo_result_free(r);
    xo_future_free(f);
    xo_ref_free(a);
}

TEST_F(Cancel, CancelAfterCompletionKeepsTheValue)
{
    xo_ref_t *a = create(&sl_class, "a");
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_send(a, "sleep", xo_args("ii", 0, 5), &f), XO_OK);
    for (int i = 0; i < 1000 && !xo_future_done(f); i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(xo_future_done(f));
    xo_future_cancel(f);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_future_wait(f, 1000, &r), XO_OK);
    int v = 0;
    xo_result_unpack(r, "i", &v);
    EXPECT_EQ(v, 5);
    xo_result_free(r);
    xo_future_free(f);
    xo_ref_free(a);
}

TEST_F(Cancel, TimedOutCallIsCancelledIfItHasNotStarted)
{
    xo_ref_t *a = create(&sl_class, "a");
    xo_future_t *busy = nullptr;
    ASSERT_EQ(xo_send(a, "spin", xo_args("i", 150), &busy), XO_OK);
    double t0 = now_ms();
    EXPECT_EQ(xo_call(a, "sleep", xo_args("ii", 0, 1), 30, nullptr), XO_ETIMEDOUT);
    double waited = now_ms() - t0;
    EXPECT_GE(waited, 29.0);
    EXPECT_LT(waited, 140.0);
    EXPECT_EQ(xo_future_wait(busy, 5000, nullptr), XO_OK);
    EXPECT_EQ(call_i64(a, "sleep", xo_args("ii", 0, 3)), 3); // the pool goes on; the timed-out call never ran
    EXPECT_EQ(slept_through.load(), 1);
    xo_future_free(busy);
    xo_ref_free(a);
}

TEST_F(Cancel, TimeoutInsideAMethodOnlyEndsThatWait)
{
    xo_ref_t *outer = create(&sl_class, "outer");
    xo_ref_t *inner = create(&sl_class, "inner");
    // forward() waits forever on inner.sleep(100): it completes, so forward answers 10 * value.
    EXPECT_EQ(call_i64(outer, "forward", xo_args("ii", 100, 4)), 40);
    xo_ref_free(outer);
    xo_ref_free(inner);
}

TEST_F(Cancel, SlowCallsAreLoggedWithTheirActorAndMethod)
{
    xo_ref_t *a = create(&sl_class, "slowpoke");
    char path[] = "/tmp/xo-slow-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    int saved = dup(2);
    dup2(fd, 2);
    xo_set_slow_call_ms(10);
    EXPECT_EQ(call_i64(a, "sleep", xo_args("ii", 30, 1)), 1);
    EXPECT_EQ(call_i64(a, "sleep", xo_args("ii", 0, 2)), 2); // fast: not logged
    xo_set_slow_call_ms(0);
    dup2(saved, 2);
    close(saved);
    std::string log(4096, '\0');
    ssize_t n = pread(fd, &log[0], log.size(), 0);
    close(fd);
    unlink(path);
    log.resize(n > 0 ? (size_t)n : 0);
    EXPECT_NE(log.find("slow call: actor \"slowpoke\" (class Sleeper) sleep took"), std::string::npos) << log;
    EXPECT_EQ(log.find("slow call", log.find("slow call") + 1), std::string::npos) << "the fast call was logged too";
    xo_ref_free(a);
}

TEST(Promise, ResolveRejectAndDoubleCompletion)
{
    xo_future_t *p = xo_promise_new();
    EXPECT_FALSE(xo_future_done(p));
    EXPECT_EQ(xo_future_wait(p, 10, nullptr), XO_ETIMEDOUT);
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        EXPECT_EQ(xo_promise_resolve(p, xo_args("i", 9)), XO_OK);
    });
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_future_wait(p, 5000, &r), XO_OK);
    t.join();
    int v = 0;
    xo_result_unpack(r, "i", &v);
    EXPECT_EQ(v, 9);
    xo_result_free(r);
    EXPECT_EQ(xo_promise_resolve(p, nullptr), XO_EINVAL);
    xo_future_free(p);

    xo_future_t *q = xo_promise_new();
    ASSERT_EQ(xo_promise_reject(q, XO_EMETHOD, "no %s", "luck"), XO_OK);
    EXPECT_EQ(xo_future_wait(q, 100, nullptr), XO_EMETHOD);
    EXPECT_STREQ(xo_last_error(), "no luck");
    xo_future_free(q);
}

} // namespace
