// xo_future_on_done: the callback runs exactly once, on the completing thread or at once when the future is done,
// with the reply visible; it races completion safely (this suite runs under TSan in CI).
#include <atomic>
#include <thread>
#include <vector>

#include "tests/runtime/pool_fixture.h"

namespace {

struct Seen {
    std::atomic<int> calls{0};
    std::atomic<int64_t> value{-1};
    std::atomic<int> status{1};
    std::thread::id thread;
    bool take = true; // take the reply in the callback (as an event loop's hand-over does)
};

void record(xo_future_t *f, void *arg)
{
    Seen *s = static_cast<Seen *>(arg);
    s->thread = std::this_thread::get_id();
    if (s->take) {
        xo_result_t *r = nullptr;
        xo_status_t st = xo_future_wait(f, 0, &r); // must not block: the reply is there
        s->status.store(st);
        if (st == XO_OK) {
            int64_t v = -1;
            xo_result_unpack(r, "l", &v);
            s->value.store(v);
            xo_result_free(r);
        }
    }
    s->calls.fetch_add(1);
}

void wait_calls(const Seen &s, int n)
{
    for (int i = 0; i < 5000 && s.calls.load() < n; i++) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

TEST(FutureOnDone, AlreadyDoneRunsAtOnceOnTheCallingThread)
{
    xo_future_t *p = xo_promise_new();
    ASSERT_EQ(xo_promise_resolve(p, xo_args("l", (int64_t)7)), XO_OK);
    Seen s;
    ASSERT_EQ(xo_future_on_done(p, record, &s), XO_OK);
    EXPECT_EQ(s.calls.load(), 1); // before xo_future_on_done returned
    EXPECT_EQ(s.thread, std::this_thread::get_id());
    EXPECT_EQ(s.status.load(), XO_OK);
    EXPECT_EQ(s.value.load(), 7);
    xo_future_free(p);
}

TEST(FutureOnDone, RunsOnTheCompletingThreadOnce)
{
    xo_future_t *p = xo_promise_new();
    Seen s;
    ASSERT_EQ(xo_future_on_done(p, record, &s), XO_OK);
    EXPECT_EQ(s.calls.load(), 0);
    std::thread::id completer;
    std::thread t([&] {
        completer = std::this_thread::get_id();
        EXPECT_EQ(xo_promise_resolve(p, xo_args("l", (int64_t)11)), XO_OK);
    });
    t.join();
    EXPECT_EQ(s.calls.load(), 1);
    EXPECT_EQ(s.thread, completer);
    EXPECT_EQ(s.value.load(), 11);
    // Completing again is refused and does not run the callback again.
    EXPECT_EQ(xo_promise_resolve(p, nullptr), XO_EINVAL);
    EXPECT_EQ(s.calls.load(), 1);
    xo_future_free(p);
}

TEST(FutureOnDone, ErrorsReachTheCallback)
{
    xo_future_t *p = xo_promise_new();
    Seen s;
    ASSERT_EQ(xo_future_on_done(p, record, &s), XO_OK);
    ASSERT_EQ(xo_promise_reject(p, XO_ENOACTOR, "gone %d", 3), XO_OK);
    EXPECT_EQ(s.calls.load(), 1);
    EXPECT_EQ(s.status.load(), XO_ENOACTOR);
    xo_future_free(p);
}

TEST(FutureOnDone, SecondRegistrationAndNullsAreRefused)
{
    xo_future_t *p = xo_promise_new();
    Seen s;
    EXPECT_EQ(xo_future_on_done(nullptr, record, &s), XO_EINVAL);
    EXPECT_EQ(xo_future_on_done(p, nullptr, &s), XO_EINVAL);
    ASSERT_EQ(xo_future_on_done(p, record, &s), XO_OK);
    EXPECT_EQ(xo_future_on_done(p, record, &s), XO_EINVAL);
    ASSERT_EQ(xo_promise_resolve(p, nullptr), XO_OK);
    EXPECT_EQ(s.calls.load(), 1);
    xo_future_free(p);
}

void free_in_callback(xo_future_t *f, void *arg)
{
    static_cast<std::atomic<int> *>(arg)->fetch_add(1);
    xo_future_free(f); // the caller's hold, handed to the callback
}

TEST(FutureOnDone, CallbackMayFreeTheFuture)
{
    std::atomic<int> n{0};
    xo_future_t *p = xo_promise_new();
    ASSERT_EQ(xo_future_on_done(p, free_in_callback, &n), XO_OK);
    std::thread t([&] { EXPECT_EQ(xo_promise_resolve(p, nullptr), XO_OK); });
    t.join();
    EXPECT_EQ(n.load(), 1);
}

// Registration racing completion, many times: exactly one run each time, with the value visible.
TEST(FutureOnDone, RegistrationRacingCompletionRunsExactlyOnce)
{
    const int rounds = 2000;
    for (int i = 0; i < rounds; i++) {
        xo_future_t *p = xo_promise_new();
        Seen s;
        std::atomic<bool> go{false};
        std::thread t([&] {
            while (!go.load()) {
            }
            EXPECT_EQ(xo_promise_resolve(p, xo_args("l", (int64_t)i)), XO_OK);
        });
        go.store(true);
        ASSERT_EQ(xo_future_on_done(p, record, &s), XO_OK);
        t.join();
        ASSERT_EQ(s.calls.load(), 1) << "round " << i;
        ASSERT_EQ(s.value.load(), i) << "round " << i;
        xo_future_free(p);
    }
}

// With no reply to take, xo_poll_replies spins for its time and says it took nothing; inside a method it does nothing.
TEST(PollReplies, NothingInFlightSpinsItsTimeAndTakesNothing)
{
    double t0 = now_ms();
    EXPECT_FALSE(xo_poll_replies(2000)); // 2 ms
    EXPECT_GE(now_ms() - t0, 1.9);
    EXPECT_FALSE(xo_poll_replies(0));
}

// ---- calls: replies completed by the pool's threads -------------------------------------------------------------

xo_status_t cb_add(xo_ctx_t *, void *, const msgpack_object *args, msgpack_packer *out)
{
    int64_t a, b;
    xo_status_t st = xo_unpack(args, "ll", &a, &b);
    if (st != XO_OK) return st;
    return xo_pack(out, "l", a + b);
}

xo_status_t cb_sleep(xo_ctx_t *, void *, const msgpack_object *args, msgpack_packer *out)
{
    int ms;
    xo_status_t st = xo_unpack(args, "i", &ms);
    if (st != XO_OK) return st;
    st = xo_sleep_ms(ms);
    if (st != XO_OK) return st;
    return xo_pack(out, "l", (int64_t)ms);
}

const xo_method_t cb_methods[] = {{.name = "add", .fn = cb_add}, {.name = "sleep", .fn = cb_sleep}};
const xo_actor_class_t cb_class = {.abi_version = XO_CLASS_ABI_V1,
                                   .flags = XO_ACTOR_STATELESS,
                                   .name = "FutureCbTest",
                                   .state_size = 0,
                                   .methods = cb_methods,
                                   .n_methods = 2};

class FutureOnDoneCalls : public PoolTest {};

TEST_F(FutureOnDoneCalls, ManySendsFromThreadsEachCallbackOnceWithItsReply)
{
    xo_ref_t *ref = create(&cb_class, "cb");
    ASSERT_NE(ref, nullptr);
    const int per_thread = 500, n_threads = 3;
    std::vector<Seen> seen(per_thread * n_threads);
    std::vector<xo_future_t *> futs(seen.size());
    std::vector<std::thread> ts;
    for (int t = 0; t < n_threads; t++)
        ts.emplace_back([&, t] {
            for (int i = 0; i < per_thread; i++) {
                int k = t * per_thread + i;
                ASSERT_EQ(xo_send(ref, "add", xo_args("ll", (int64_t)k, (int64_t)1000), &futs[k]), XO_OK);
                ASSERT_EQ(xo_future_on_done(futs[k], record, &seen[k]), XO_OK);
            }
        });
    for (auto &t : ts) t.join();
    for (size_t k = 0; k < seen.size(); k++) {
        wait_calls(seen[k], 1);
        ASSERT_EQ(seen[k].calls.load(), 1) << k;
        ASSERT_EQ(seen[k].value.load(), (int64_t)k + 1000) << k;
        xo_future_free(futs[k]);
    }
    xo_ref_free(ref);
}

TEST_F(FutureOnDoneCalls, CancelledCallRunsTheCallbackWithCancelled)
{
    xo_ref_t *ref = create(&cb_class, "cb");
    ASSERT_NE(ref, nullptr);
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_send(ref, "sleep", xo_args("i", 10000), &f), XO_OK);
    Seen s;
    ASSERT_EQ(xo_future_on_done(f, record, &s), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(s.calls.load(), 0);
    double t0 = now_ms();
    xo_future_cancel(f);
    wait_calls(s, 1);
    EXPECT_EQ(s.calls.load(), 1);
    EXPECT_EQ(s.status.load(), XO_ECANCELED);
    EXPECT_LT(now_ms() - t0, 2000.0);
    xo_future_free(f);
    xo_ref_free(ref);
}

// A call's future freed by its caller before the reply still runs the callback once (it touches only arg): the
// runtime's own hold keeps the future alive until the reply.
TEST_F(FutureOnDoneCalls, FreedBeforeTheReplyStillRuns)
{
    xo_ref_t *ref = create(&cb_class, "cb");
    ASSERT_NE(ref, nullptr);
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_send(ref, "sleep", xo_args("i", 30), &f), XO_OK);
    Seen s;
    s.take = false;
    ASSERT_EQ(xo_future_on_done(f, record, &s), XO_OK);
    xo_future_free(f);
    wait_calls(s, 1);
    EXPECT_EQ(s.calls.load(), 1);
    xo_ref_free(ref);
}

} // namespace
