// Stateful actors run one message at a time (even when a method waits); stateless actors run calls concurrently.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/runtime/pool_fixture.h"

namespace {

constexpr int kCallers = 8;
constexpr int kPerCaller = 500;

struct Ledger {
    std::atomic<int> inside; // methods running right now: must never exceed 1
    int max_inside;
    int64_t next_seq[kCallers];
    int64_t out_of_order;
    int64_t total;
};

xo_status_t ledger_init(xo_ctx_t *, void *state, const msgpack_object *)
{
    new (state) Ledger{};
    return XO_OK;
}

xo_status_t ledger_append(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *l = static_cast<Ledger *>(state);
    int in = ++l->inside;
    if (in > l->max_inside) l->max_inside = in;
    int caller;
    int64_t seq;
    xo_status_t st = xo_unpack(args, "il", &caller, &seq);
    if (st == XO_OK) {
        if (l->next_seq[caller] != seq) l->out_of_order++;
        l->next_seq[caller] = seq + 1;
        // Widen the window in which a second concurrent run would be seen.
        for (volatile int spin = 0; spin < 200; spin++) {
        }
        l->total++;
    }
    --l->inside;
    return st != XO_OK ? st : xo_pack(out, "l", l->total);
}

xo_status_t ledger_stats(xo_ctx_t *, void *state, const msgpack_object *, msgpack_packer *out)
{
    auto *l = static_cast<Ledger *>(state);
    return xo_pack(out, "[lli]", l->total, l->out_of_order, l->max_inside);
}

// Waits (suspending its fiber) while holding the actor: nobody from another chain may get in meanwhile.
xo_status_t ledger_slow(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *l = static_cast<Ledger *>(state);
    int in = ++l->inside;
    if (in > l->max_inside) l->max_inside = in;
    xo_status_t st = xo_sleep_ms(30);
    --l->inside;
    if (st != XO_OK) return st;
    return xo_pack(out, "l", ++l->total);
}

const xo_method_t ledger_methods[] = {{.name = "append", .fn = ledger_append},
                                      {.name = "stats", .fn = ledger_stats},
                                      {.name = "slow", .fn = ledger_slow}};
const xo_actor_class_t ledger_class = {.abi_version = XO_CLASS_ABI_V1,
                                       .name = "Ledger",
                                       .state_size = sizeof(Ledger),
                                       .init = ledger_init,
                                       .methods = ledger_methods,
                                       .n_methods = 3};

using Concurrency = PoolTest;

TEST_F(Concurrency, StatefulActorSeesOneMessageAtATimeInPerSenderOrder)
{
    xo_ref_t *ref = create(&ledger_class, "ledger");
    std::vector<std::thread> ts;
    std::atomic<int> failures{0};
    for (int c = 0; c < kCallers; c++)
        ts.emplace_back([&, c] {
            for (int64_t i = 0; i < kPerCaller; i++) {
                // Mix tells and calls: both must keep per-sender order.
                xo_status_t st = (i % 3 == 0) ? xo_call(ref, "append", xo_args("il", c, i), 5000, nullptr)
                                              : xo_tell(ref, "append", xo_args("il", c, i));
                if (st != XO_OK) failures++;
            }
        });
    for (auto &t : ts) t.join();
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(ref, "stats", nullptr, 5000, &r), XO_OK);
    int64_t total = 0, out_of_order = 0;
    int max_inside = 0;
    ASSERT_EQ(xo_result_unpack(r, "[lli]", &total, &out_of_order, &max_inside), XO_OK);
    xo_result_free(r);
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(total, kCallers * kPerCaller);
    EXPECT_EQ(out_of_order, 0);
    EXPECT_EQ(max_inside, 1);
    xo_ref_free(ref);
}

TEST_F(Concurrency, WaitingStatefulMethodKeepsOtherChainsOut)
{
    xo_ref_t *ref = create(&ledger_class, "ledger");
    std::vector<std::thread> ts;
    double t0 = now_ms();
    for (int c = 0; c < 4; c++) ts.emplace_back([&] { EXPECT_GT(call_i64(ref, "slow"), 0); });
    for (auto &t : ts) t.join();
    double elapsed = now_ms() - t0;
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(ref, "stats", nullptr, 5000, &r), XO_OK);
    int64_t total = 0, ooo = 0;
    int max_inside = 0;
    xo_result_unpack(r, "[lli]", &total, &ooo, &max_inside);
    xo_result_free(r);
    EXPECT_EQ(total, 4);
    EXPECT_EQ(max_inside, 1) << "two slow() ran interleaved on a stateful actor";
    EXPECT_GE(elapsed, 4 * 30 - 5) << "the four 30 ms calls should have run one after the other";
    xo_ref_free(ref);
}

// ---- stateless ----

struct Meeting {
    xo_future_t *arrived[2];
    std::atomic<int> inside;
    std::atomic<int> max_inside;
};

xo_status_t meeting_init(xo_ctx_t *, void *state, const msgpack_object *)
{
    auto *m = new (state) Meeting{};
    m->arrived[0] = xo_promise_new();
    m->arrived[1] = xo_promise_new();
    return (m->arrived[0] && m->arrived[1]) ? XO_OK : XO_ENOMEM;
}

void meeting_fini(void *state)
{
    auto *m = static_cast<Meeting *>(state);
    xo_future_free(m->arrived[0]);
    xo_future_free(m->arrived[1]);
}

// meet(i): announce arrival i, then wait for the other one. Two calls that each wait for the other: only possible
// when the actor runs them concurrently.
xo_status_t meeting_meet(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *m = static_cast<Meeting *>(state);
    int i;
    xo_status_t st = xo_unpack(args, "i", &i);
    if (st != XO_OK) return st;
    if (i != 0 && i != 1) return xo_ctx_error(ctx, XO_EBADARGS, "i must be 0 or 1");
    st = xo_promise_resolve(m->arrived[i], xo_args("i", i));
    if (st != XO_OK) return st;
    st = xo_future_wait(m->arrived[1 - i], 5000, nullptr);
    if (st != XO_OK) return st;
    return xo_pack(out, "i", 1 - i);
}

xo_status_t meeting_nap(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *m = static_cast<Meeting *>(state);
    int in = ++m->inside;
    int prev = m->max_inside.load();
    while (in > prev && !m->max_inside.compare_exchange_weak(prev, in)) {
    }
    xo_status_t st = xo_sleep_ms(100);
    --m->inside;
    return st != XO_OK ? st : xo_pack(out, "i", m->max_inside.load());
}

const xo_method_t meeting_methods[] = {{.name = "meet", .fn = meeting_meet}, {.name = "nap", .fn = meeting_nap}};
const xo_actor_class_t meeting_class = {.abi_version = XO_CLASS_ABI_V1,
                                        .flags = XO_ACTOR_STATELESS,
                                        .name = "Meeting",
                                        .state_size = sizeof(Meeting),
                                        .init = meeting_init,
                                        .fini = meeting_fini,
                                        .methods = meeting_methods,
                                        .n_methods = 2};

TEST_F(Concurrency, StatelessCallsThatWaitForEachOtherBothComplete)
{
    xo_ref_t *ref = create(&meeting_class, "meeting");
    xo_future_t *f0 = nullptr, *f1 = nullptr;
    ASSERT_EQ(xo_send(ref, "meet", xo_args("i", 0), &f0), XO_OK);
    ASSERT_EQ(xo_send(ref, "meet", xo_args("i", 1), &f1), XO_OK);
    xo_result_t *r0 = nullptr, *r1 = nullptr;
    ASSERT_EQ(xo_future_wait(f0, 5000, &r0), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_future_wait(f1, 5000, &r1), XO_OK) << xo_last_error();
    int v0 = -1, v1 = -1;
    xo_result_unpack(r0, "i", &v0);
    xo_result_unpack(r1, "i", &v1);
    EXPECT_EQ(v0, 1);
    EXPECT_EQ(v1, 0);
    xo_result_free(r0);
    xo_result_free(r1);
    xo_future_free(f0);
    xo_future_free(f1);
    xo_ref_free(ref);
}

TEST_F(Concurrency, StatelessCallsOverlapInTime)
{
    xo_ref_t *ref = create(&meeting_class, "napper");
    std::vector<xo_future_t *> fs(6);
    double t0 = now_ms();
    for (auto &f : fs) ASSERT_EQ(xo_send(ref, "nap", nullptr, &f), XO_OK);
    int max_inside = 0;
    for (auto *f : fs) {
        xo_result_t *r = nullptr;
        ASSERT_EQ(xo_future_wait(f, 5000, &r), XO_OK);
        int v = 0;
        xo_result_unpack(r, "i", &v);
        max_inside = std::max(max_inside, v);
        xo_result_free(r);
        xo_future_free(f);
    }
    EXPECT_LT(now_ms() - t0, 400.0) << "six 100 ms naps should overlap";
    EXPECT_GE(max_inside, 2);
    xo_ref_free(ref);
}

TEST(PoolStop, PendingCallsAreAnsweredWhenThePoolStops)
{
    xo_pool_config_t cfg{};
    cfg.n_threads = 2;
    xo_pool_t *p = nullptr;
    ASSERT_EQ(xo_pool_start(&cfg, &p), XO_OK);
    xo_ref_t *ref = nullptr;
    ASSERT_EQ(xo_create_actor(&meeting_class, nullptr, xo_pool_address(p), "m", &ref), XO_OK);
    // meet(0) waits for an arrival that never comes (up to 5 s); the stop must answer it at once.
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_send(ref, "meet", xo_args("i", 0), &f), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    double t0 = now_ms();
    xo_pool_stop(p);
    EXPECT_EQ(xo_future_wait(f, 1000, nullptr), XO_ECLOSED) << xo_last_error();
    EXPECT_LT(now_ms() - t0, 3000.0);
    xo_future_free(f);
    xo_ref_free(ref);
}

} // namespace

namespace {

// A promise resolved on one thread while its waiter, on another, frees it as soon as it sees the value: the
// resolver holds no reference of its own (as the collectives' rendezvous resolves its members' promises), so the
// future must stay alive until the resolve has finished with it. A use after free here is what ASan or TSan reports;
// before the fix TSan found it in the rendezvous under load.
TEST(Promise, TheWaiterMayFreeItAsSoonAsItIsResolved)
{
    for (int i = 0; i < 2000; i++) {
        xo_future_t *p = xo_promise_new();
        ASSERT_NE(p, nullptr);
        std::thread resolver([p] { EXPECT_EQ(xo_promise_resolve(p, xo_args("i", 7)), XO_OK); });
        xo_result_t *r = nullptr;
        ASSERT_EQ(xo_future_wait(p, 5000, &r), XO_OK) << xo_last_error();
        int64_t v = 0;
        EXPECT_EQ(xo_result_unpack(r, "l", &v), XO_OK);
        EXPECT_EQ(v, 7);
        xo_result_free(r);
        xo_future_free(p); // while the resolver may still be inside xo_promise_resolve
        resolver.join();
    }
}

} // namespace
