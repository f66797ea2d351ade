// Batches: many calls of one extensible method in one message; with and without a batch handler.
#include <atomic>
#include <string>

#include "tests/runtime/pool_fixture.h"

namespace {

struct Store {
    int64_t sum;
    int single_runs;
    int batch_runs;
};

xo_status_t store_put(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *s = static_cast<Store *>(state);
    int64_t v;
    xo_status_t st = xo_unpack(args, "l", &v);
    if (st != XO_OK) return st;
    if (v < 0) return xo_ctx_error(ctx, XO_EMETHOD, "negative value %lld", (long long)v);
    s->single_runs++;
    s->sum += v;
    return xo_pack(out, "l", s->sum);
}

xo_status_t store_put_batch(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                            xo_batch_out_t *out)
{
    auto *s = static_cast<Store *>(state);
    s->batch_runs++;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (xo_unpack(args[i], "l", &v) != XO_OK) {
            xo_batch_error(out, i, XO_EBADARGS, "%s", xo_last_error());
            continue;
        }
        if (v < 0) {
            xo_batch_error(out, i, XO_EMETHOD, "negative value %lld", (long long)v);
            continue;
        }
        s->sum += v;
        xo_pack(xo_batch_result(out, i), "l", s->sum);
    }
    return XO_OK;
}

xo_status_t store_batch_only(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                             xo_batch_out_t *out)
{
    static_cast<Store *>(state)->batch_runs++;
    for (size_t i = 0; i < n; i++) xo_pack(xo_batch_result(out, i), "l", (int64_t)n);
    return XO_OK;
}

xo_status_t store_batch_fails(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                              xo_batch_out_t *out)
{
    return xo_ctx_error(ctx, XO_EMETHOD, "whole batch refused");
}

xo_status_t store_stats(xo_ctx_t *, void *state, const msgpack_object *, msgpack_packer *out)
{
    auto *s = static_cast<Store *>(state);
    return xo_pack(out, "[lii]", s->sum, s->single_runs, s->batch_runs);
}

const xo_method_t store_methods[] = {
    {.name = "put", .fn = store_put, .batch = store_put_batch, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "put_plain", .fn = store_put, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "put_not_extensible", .fn = store_put},
    {.name = "count_batch", .batch = store_batch_only, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "refuse", .fn = store_put, .batch = store_batch_fails, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "stats", .fn = store_stats},
};
const xo_actor_class_t store_class = {.abi_version = XO_CLASS_ABI_V1,
                                      .name = "Store",
                                      .state_size = sizeof(Store),
                                      .methods = store_methods,
                                      .n_methods = sizeof store_methods / sizeof store_methods[0]};

class Batch : public PoolTest {
  protected:
    void SetUp() override
    {
        PoolTest::SetUp();
        ref = create(&store_class, "store");
    }
    void TearDown() override
    {
        xo_ref_free(ref);
        PoolTest::TearDown();
    }
    void stats(int64_t *sum, int *single, int *batch)
    {
        xo_result_t *r = nullptr;
        ASSERT_EQ(xo_call(ref, "stats", nullptr, 5000, &r), XO_OK);
        ASSERT_EQ(xo_result_unpack(r, "[lii]", sum, single, batch), XO_OK);
        xo_result_free(r);
    }
    xo_ref_t *ref = nullptr;
};

// Item 14 of issue 10: a delayed call whose xo_args() failed fails the batch, naming the call; nothing is sent.
TEST_F(Batch, ABadArgumentsFormatInOneCallIsReported)
{
    xo_delayed_t *calls[3] = {xo_delay("put", xo_args("l", (int64_t)1)), xo_delay("put", xo_args("lq", (int64_t)2)),
                              xo_delay("put", xo_args("l", (int64_t)3))};
    xo_status_t st[3];
    xo_result_t *res[3];
    EXPECT_EQ(xo_batch(ref, calls, 3, 5000, st, res, nullptr), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("batch call 1: xo_args(\"lq\")"), std::string::npos) << xo_last_error();
    int64_t sum;
    int single, batch;
    stats(&sum, &single, &batch);
    EXPECT_EQ(sum, 0);
    EXPECT_EQ(batch, 0);
}

TEST_F(Batch, HandlerRunsOnceAndErrorsStayPerCall)
{
    constexpr size_t n = 5;
    xo_delayed_t *calls[n];
    int64_t vals[n] = {1, 2, -3, 4, 5};
    for (size_t i = 0; i < n; i++) calls[i] = xo_delay("put", xo_args("l", vals[i]));
    calls[3] = (xo_delayed_free(calls[3]), xo_delay("put", xo_args("s", "four")));
    xo_status_t st[n];
    xo_result_t *res[n];
    char *err[n];
    ASSERT_EQ(xo_batch(ref, calls, n, 5000, st, res, err), XO_OK) << xo_last_error();
    int64_t expect[n] = {1, 3, 0, 0, 8};
    for (size_t i = 0; i < n; i++) {
        if (i == 2) {
            EXPECT_EQ(st[i], XO_EMETHOD);
            EXPECT_STREQ(err[i], "negative value -3");
            EXPECT_EQ(res[i], nullptr);
        } else if (i == 3) {
            EXPECT_EQ(st[i], XO_EBADARGS);
            EXPECT_NE(std::string(err[i]).find("expected int"), std::string::npos);
        } else {
            EXPECT_EQ(st[i], XO_OK);
            int64_t v;
            ASSERT_EQ(xo_result_unpack(res[i], "l", &v), XO_OK);
            EXPECT_EQ(v, expect[i]);
            EXPECT_EQ(err[i], nullptr);
        }
        xo_result_free(res[i]);
        free(err[i]);
    }
    int64_t sum;
    int single, batch;
    stats(&sum, &single, &batch);
    EXPECT_EQ(sum, 8);
    EXPECT_EQ(batch, 1);
    EXPECT_EQ(single, 0);
}

// xo_batch_send + xo_future_batch_results: the same batch without blocking, its future usable with on_done.
TEST_F(Batch, SentWithoutWaitingAndTakenFromTheFuture)
{
    constexpr size_t n = 3;
    xo_delayed_t *calls[n] = {xo_delay("put", xo_args("l", (int64_t)1)), xo_delay("put", xo_args("l", (int64_t)-1)),
                              xo_delay("put", xo_args("l", (int64_t)2))};
    xo_future_t *f = nullptr;
    ASSERT_EQ(xo_batch_send(ref, calls, n, &f), XO_OK) << xo_last_error();
    std::atomic<int> done{0};
    ASSERT_EQ(xo_future_on_done(f, [](xo_future_t *, void *a) { static_cast<std::atomic<int> *>(a)->fetch_add(1); },
                                &done),
              XO_OK);
    xo_status_t st[n];
    xo_result_t *res[n];
    char *err[n];
    ASSERT_EQ(xo_future_batch_results(f, 5000, n, st, res, err), XO_OK) << xo_last_error();
    EXPECT_EQ(done.load(), 1);
    EXPECT_EQ(st[0], XO_OK);
    EXPECT_EQ(st[1], XO_EMETHOD);
    EXPECT_STREQ(err[1], "negative value -1");
    EXPECT_EQ(st[2], XO_OK);
    int64_t v = 0;
    ASSERT_EQ(xo_result_unpack(res[2], "l", &v), XO_OK);
    EXPECT_EQ(v, 3);
    for (size_t i = 0; i < n; i++) {
        xo_result_free(res[i]);
        free(err[i]);
    }
    // taken once; a wrong count is refused
    EXPECT_EQ(xo_future_batch_results(f, 0, n, st, res, nullptr), XO_EINVAL);
    xo_future_free(f);
    xo_delayed_t *one[1] = {xo_delay("put", xo_args("l", (int64_t)1))};
    ASSERT_EQ(xo_batch_send(ref, one, 1, &f), XO_OK);
    EXPECT_EQ(xo_future_batch_results(f, 5000, 2, st, res, nullptr), XO_EINVAL);
    xo_future_free(f);
    EXPECT_EQ(xo_batch_send(ref, nullptr, 0, &f), XO_EINVAL);
    xo_delayed_t *bad[1] = {xo_delay("put_not_extensible", xo_args("l", (int64_t)1))};
    EXPECT_EQ(xo_batch_send(ref, bad, 1, &f), XO_EBATCH);
}

TEST_F(Batch, WithoutHandlerThePlainMethodRunsPerCall)
{
    constexpr size_t n = 4;
    xo_delayed_t *calls[n];
    for (size_t i = 0; i < n; i++) calls[i] = xo_delay("put_plain", xo_args("l", (int64_t)(i == 1 ? -1 : 10)));
    xo_status_t st[n];
    xo_result_t *res[n];
    ASSERT_EQ(xo_batch(ref, calls, n, 5000, st, res, nullptr), XO_OK);
    EXPECT_EQ(st[0], XO_OK);
    EXPECT_EQ(st[1], XO_EMETHOD);
    EXPECT_EQ(st[2], XO_OK);
    EXPECT_EQ(st[3], XO_OK);
    int64_t last = 0;
    xo_result_unpack(res[3], "l", &last);
    EXPECT_EQ(last, 30);
    for (auto *r : res) xo_result_free(r);
    int64_t sum;
    int single, batch;
    stats(&sum, &single, &batch);
    EXPECT_EQ(single, 3); // the failing call returned before counting
    EXPECT_EQ(batch, 0);
}

TEST_F(Batch, BatchOnlyMethodAnswersASingleCallAsABatchOfOne)
{
    EXPECT_EQ(call_i64(ref, "count_batch", nullptr), 1);
    xo_delayed_t *calls[3] = {xo_delay("count_batch", nullptr), xo_delay("count_batch", nullptr),
                              xo_delay("count_batch", nullptr)};
    xo_status_t st[3];
    xo_result_t *res[3];
    ASSERT_EQ(xo_batch(ref, calls, 3, 5000, st, res, nullptr), XO_OK);
    int64_t v = 0;
    xo_result_unpack(res[0], "l", &v);
    EXPECT_EQ(v, 3);
    for (auto *r : res) xo_result_free(r);
}

TEST_F(Batch, FailingHandlerFailsEveryCall)
{
    xo_delayed_t *calls[2] = {xo_delay("refuse", xo_args("l", (int64_t)1)), xo_delay("refuse", xo_args("l", (int64_t)2))};
    xo_status_t st[2];
    xo_result_t *res[2];
    char *err[2];
    ASSERT_EQ(xo_batch(ref, calls, 2, 5000, st, res, err), XO_OK);
    for (int i = 0; i < 2; i++) {
        EXPECT_EQ(st[i], XO_EMETHOD);
        EXPECT_STREQ(err[i], "whole batch refused");
        free(err[i]);
    }
}

TEST_F(Batch, EmptyBatchSendsNothing)
{
    EXPECT_EQ(xo_batch(ref, nullptr, 0, 5000, nullptr, nullptr, nullptr), XO_OK);
    int64_t sum;
    int single, batch;
    stats(&sum, &single, &batch);
    EXPECT_EQ(batch, 0);
}

TEST_F(Batch, MixedMethodsAndNonExtensibleAreRefused)
{
    xo_delayed_t *mixed[2] = {xo_delay("put", xo_args("l", (int64_t)1)), xo_delay("put_plain", xo_args("l", (int64_t)1))};
    xo_status_t st[2];
    xo_result_t *res[2];
    EXPECT_EQ(xo_batch(ref, mixed, 2, 5000, st, res, nullptr), XO_EBATCH);
    EXPECT_NE(std::string(xo_last_error()).find("put_plain"), std::string::npos) << xo_last_error();
    xo_delayed_t *plain[1] = {xo_delay("put_not_extensible", xo_args("l", (int64_t)1))};
    EXPECT_EQ(xo_batch(ref, plain, 1, 5000, st, res, nullptr), XO_EBATCH);
    EXPECT_NE(std::string(xo_last_error()).find("not extensible"), std::string::npos);
    xo_delayed_t *unknown[1] = {xo_delay("nope", nullptr)};
    EXPECT_EQ(xo_batch(ref, unknown, 1, 5000, st, res, nullptr), XO_ENOMETHOD);
    int64_t sum;
    int single, batch;
    stats(&sum, &single, &batch);
    EXPECT_EQ(sum, 0) << "a refused batch must not run any of its calls";
}

TEST_F(Batch, BatchToADestroyedActorFailsAsAWhole)
{
    ASSERT_EQ(xo_destroy_actor(ref), XO_OK);
    xo_delayed_t *calls[1] = {xo_delay("put", xo_args("l", (int64_t)1))};
    xo_status_t st[1];
    xo_result_t *res[1];
    EXPECT_EQ(xo_batch(ref, calls, 1, 5000, st, res, nullptr), XO_ENOACTOR);
}

} // namespace
