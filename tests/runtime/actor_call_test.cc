// Calls, sends, tells and their errors; reentrancy (self-calls, A→B→A); delayed tells; calls across pools.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/runtime/pool_fixture.h"

namespace {

struct Acc {
    int64_t total;
    int64_t calls;
};

xo_status_t acc_add(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *a = static_cast<Acc *>(state);
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    a->total += n;
    a->calls++;
    return xo_pack(out, "l", a->total);
}

xo_status_t acc_get(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", static_cast<Acc *>(state)->total);
}

xo_status_t acc_fail(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t why;
    xo_status_t st = xo_unpack(args, "s", &why);
    if (st != XO_OK) return st;
    return xo_ctx_error(ctx, XO_EMETHOD, "refused: %.*s", (int)why.len, why.ptr);
}

// Calls its own "add" through a ref to itself: a self-call from inside a stateful method.
xo_status_t acc_add_twice_via_self(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    xo_ref_t *self = xo_ctx_self(ctx);
    for (int i = 0; i < 2 && st == XO_OK; i++) st = xo_call(self, "add", xo_args("l", n), 1000, nullptr);
    xo_ref_free(self);
    if (st != XO_OK) return st;
    return xo_pack(out, "l", static_cast<Acc *>(state)->total);
}

xo_status_t acc_echo(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *all = args;
    return msgpack_pack_object(out, *all) == 0 ? XO_OK : XO_ENOMEM;
}

// Calls its own "fail", then sends that call's text back through xo_ctx_error, as is or wrapped: the idiom that
// formats the activation's error buffer into itself.
xo_status_t acc_relay_failure(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    bool wrap = false;
    xo_status_t st = xo_unpack(args, "t", &wrap);
    if (st != XO_OK) return st;
    xo_ref_t *self = xo_ctx_self(ctx);
    st = xo_call(self, "fail", xo_args("s", "deep"), 1000, nullptr);
    xo_ref_free(self);
    if (st == XO_OK) return xo_ctx_error(ctx, XO_EMETHOD, "fail did not fail");
    return wrap ? xo_ctx_error(ctx, st, "wrapped: %s", xo_last_error()) : xo_ctx_error(ctx, st, "%s", xo_last_error());
}

// Lends the actor's own state to its result ('B'). A caller in this process keeps its result past the actor's next
// message, so it must get a copy.
xo_status_t acc_lend_state(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    auto *a = static_cast<Acc *>(state);
    return xo_pack(out, "B", &a->total, sizeof a->total);
}

const xo_method_t acc_methods[] = {
    {.name = "lend_state", .fn = acc_lend_state},
    {.name = "relay_failure", .fn = acc_relay_failure},
    {.name = "add", .fn = acc_add},
    {.name = "get", .fn = acc_get},
    {.name = "fail", .fn = acc_fail},
    {.name = "add_twice_via_self", .fn = acc_add_twice_via_self},
    {.name = "echo", .fn = acc_echo},
};
const xo_actor_class_t acc_class = {.abi_version = XO_CLASS_ABI_V1,
                                    .name = "Acc",
                                    .state_size = sizeof(Acc),
                                    .methods = acc_methods,
                                    .n_methods = sizeof acc_methods / sizeof acc_methods[0]};

using Calls = PoolTest;

TEST_F(Calls, AMethodRelaysOrWrapsTheErrorTextOfACallThatFailed)
{
    xo_ref_t *a = create(&acc_class, "relay");
    EXPECT_EQ(xo_call(a, "relay_failure", xo_args("t", false), 2000, nullptr), XO_EMETHOD);
    EXPECT_STREQ(xo_last_error(), "refused: deep");
    EXPECT_EQ(xo_call(a, "relay_failure", xo_args("t", true), 2000, nullptr), XO_EMETHOD);
    EXPECT_STREQ(xo_last_error(), "wrapped: refused: deep");
    xo_ref_free(a);
}

// Item 14 of issue 10: a call whose xo_args() format is bad fails with XO_EINVAL; before, it went out with no
// arguments (and an "echo" answered an empty array).
TEST_F(Calls, ABadArgumentsFormatIsReportedNotSentAsNoArguments)
{
    xo_ref_t *a = create(&acc_class, "badfmt");
    xo_result_t *r = nullptr;
    EXPECT_EQ(xo_call(a, "echo", xo_args("iq", 1), 2000, &r), XO_EINVAL);
    EXPECT_EQ(r, nullptr);
    EXPECT_NE(std::string(xo_last_error()).find("xo_args(\"iq\"): bad pack format character 'q'"), std::string::npos)
        << xo_last_error();
    EXPECT_EQ(xo_tell(a, "add", xo_args("[l", (int64_t)1)), XO_EINVAL);
    EXPECT_EQ(xo_tell_delay(a, "add", xo_args("l]", (int64_t)1), 10), XO_EINVAL);
    xo_future_t *f = nullptr;
    EXPECT_EQ(xo_send(a, "add", xo_args("{l}", (int64_t)1), &f), XO_EINVAL);
    EXPECT_EQ(f, nullptr);
    xo_ref_t *other = nullptr;
    EXPECT_EQ(xo_create_actor(&acc_class, xo_args("z"), addr.c_str(), "never", &other), XO_EINVAL);
    EXPECT_EQ(other, nullptr);
    xo_ref_t *probe = nullptr;
    EXPECT_EQ(xo_actor_ref(addr.c_str(), "never", &probe), XO_ENOACTOR);
    xo_future_t *p = xo_promise_new();
    EXPECT_EQ(xo_promise_resolve(p, xo_args("q")), XO_EINVAL);
    xo_future_free(p);
    EXPECT_EQ(call_i64(a, "get"), 0); // nothing ran
    xo_ref_free(a);
}

TEST_F(Calls, CallReturnsValue)
{
    xo_ref_t *a = create(&acc_class, "acc");
    EXPECT_EQ(call_i64(a, "add", xo_args("l", (int64_t)40)), 40);
    EXPECT_EQ(call_i64(a, "add", xo_args("i", 2)), 42);
    xo_ref_free(a);
}

TEST_F(Calls, ABinaryLentToAResultIsCopiedForACallerInThisProcess)
{
    xo_ref_t *a = create(&acc_class, "lend");
    EXPECT_EQ(call_i64(a, "add", xo_args("l", (int64_t)0x1122334455667788)), 0x1122334455667788);
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(a, "lend_state", nullptr, 1000, &r), XO_OK) << xo_last_error();
    EXPECT_EQ(call_i64(a, "add", xo_args("l", (int64_t)1)), 0x1122334455667789); // the state moves on
    xo_bytes_t b{};
    ASSERT_EQ(xo_result_unpack(r, "b", &b), XO_OK);
    int64_t v = 0;
    ASSERT_EQ(b.len, sizeof v);
    memcpy(&v, b.ptr, sizeof v);
    EXPECT_EQ(v, 0x1122334455667788);
    xo_result_free(r);
    xo_ref_free(a);
}

TEST_F(Calls, ArgumentsRoundTripThroughMsgpack)
{
    xo_ref_t *a = create(&acc_class, "echo");
    const char blob[3] = {0, 1, 2};
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(a, "echo", xo_args("isdtnb[il]{si}", 7, "str", 2.5, 1, blob, sizeof blob, 1, (int64_t)-5, "k", 9),
                      1000, &r),
              XO_OK)
        << xo_last_error();
    int i = 0, i2 = 0, mv = 0;
    int64_t l = 0;
    xo_str_t s{};
    double d = 0;
    bool t = false;
    xo_bytes_t b{};
    const msgpack_object *map = nullptr;
    ASSERT_EQ(xo_result_unpack(r, "[isdtnb[il]o]", &i, &s, &d, &t, &b, &i2, &l, &map), XO_OK) << xo_last_error();
    EXPECT_EQ(i, 7);
    EXPECT_EQ(to_string(s), "str");
    EXPECT_DOUBLE_EQ(d, 2.5);
    EXPECT_TRUE(t);
    ASSERT_EQ(b.len, 3u);
    EXPECT_EQ(memcmp(b.ptr, blob, 3), 0);
    EXPECT_EQ(i2, 1);
    EXPECT_EQ(l, -5);
    ASSERT_EQ(map->type, MSGPACK_OBJECT_MAP);
    ASSERT_EQ(map->via.map.size, 1u);
    mv = (int)map->via.map.ptr[0].val.via.i64;
    EXPECT_EQ(mv, 9);
    xo_result_free(r);
    xo_ref_free(a);
}

TEST_F(Calls, UnknownMethodWrongArgumentsAndMethodErrorsKeepThePoolRunning)
{
    xo_ref_t *a = create(&acc_class, "acc");
    EXPECT_EQ(xo_call(a, "nope", nullptr, 1000, nullptr), XO_ENOMETHOD);
    EXPECT_NE(std::string(xo_last_error()).find("\"nope\""), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_call(a, "add", xo_args("s", "x"), 1000, nullptr), XO_EBADARGS);
    EXPECT_NE(std::string(xo_last_error()).find("argument 1: expected int"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_call(a, "add", nullptr, 1000, nullptr), XO_EBADARGS);
    EXPECT_EQ(xo_call(a, "add", xo_args("ll", (int64_t)1, (int64_t)2), 1000, nullptr), XO_EBADARGS);
    EXPECT_EQ(xo_call(a, "fail", xo_args("s", "no thanks"), 1000, nullptr), XO_EMETHOD);
    EXPECT_STREQ(xo_last_error(), "refused: no thanks");
    // A malformed argument list (announces 2 values, carries 1) is refused by the decoder, not crashed on.
    xo_args_t *bad = xo_args_new(2);
    msgpack_pack_int(xo_args_packer(bad), 1);
    EXPECT_EQ(xo_call(a, "add", bad, 1000, nullptr), XO_EPROTO);
    // A bad format string gives arguments the call refuses.
    EXPECT_EQ(xo_call(a, "add", xo_args("[i"), 1000, nullptr), XO_EINVAL);
    EXPECT_EQ(call_i64(a, "add", xo_args("l", (int64_t)1)), 1);
    xo_ref_free(a);
}

TEST_F(Calls, SendReturnsFuturesThatCompleteIndependently)
{
    xo_ref_t *a = create(&acc_class, "acc");
    std::vector<xo_future_t *> fs(100);
    for (int i = 0; i < 100; i++) ASSERT_EQ(xo_send(a, "add", xo_args("l", (int64_t)1), &fs[i]), XO_OK);
    for (int i = 0; i < 100; i++) {
        xo_result_t *r = nullptr;
        ASSERT_EQ(xo_future_wait(fs[i], 5000, &r), XO_OK);
        int64_t v;
        xo_result_unpack(r, "l", &v);
        EXPECT_EQ(v, i + 1); // one sender: in order
        xo_result_free(r);
        EXPECT_EQ(xo_future_wait(fs[i], 0, nullptr), XO_EINVAL); // value already taken
        xo_future_free(fs[i]);
    }
    xo_ref_free(a);
}

TEST_F(Calls, TellsRunInOrderBeforeALaterCall)
{
    xo_ref_t *a = create(&acc_class, "acc");
    for (int i = 1; i <= 1000; i++) ASSERT_EQ(xo_tell(a, "add", xo_args("l", (int64_t)i)), XO_OK);
    EXPECT_EQ(call_i64(a, "get"), 1000 * 1001 / 2);
    xo_ref_free(a);
}

TEST_F(Calls, TellDelayWaitsAtLeastTheDelay)
{
    xo_ref_t *a = create(&acc_class, "acc");
    double t0 = now_ms();
    ASSERT_EQ(xo_tell_delay(a, "add", xo_args("l", (int64_t)5), 100), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    EXPECT_EQ(call_i64(a, "get"), 0) << "ran before its delay";
    while (call_i64(a, "get") == 0 && now_ms() - t0 < 2000) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    double elapsed = now_ms() - t0;
    EXPECT_EQ(call_i64(a, "get"), 5);
    EXPECT_GE(elapsed, 99.0);
    EXPECT_LT(elapsed, 600.0);
    xo_ref_free(a);
}

TEST_F(Calls, TellDelayToAnActorThatIsGoneIsDropped)
{
    xo_ref_t *a = create(&acc_class, "gone");
    ASSERT_EQ(xo_tell_delay(a, "add", xo_args("l", (int64_t)5), 30), XO_OK);
    ASSERT_EQ(xo_destroy_actor(a), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(80));
    EXPECT_FALSE(xo_has_actor(a));
    xo_ref_free(a);
}

TEST_F(Calls, StatefulSelfCallDoesNotDeadlock)
{
    xo_ref_t *a = create(&acc_class, "selfish");
    EXPECT_EQ(call_i64(a, "add_twice_via_self", xo_args("l", (int64_t)3)), 6);
    xo_ref_free(a);
}

// ---- A→B→A: a call chain that re-enters a stateful actor that is waiting ----

xo_status_t node_relay(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    // relay(path): call path[0].relay(path[1:]); with an empty path answer our uid.
    const msgpack_object *path = nullptr;
    xo_status_t st = xo_unpack(args, "o", &path);
    if (st != XO_OK) return st;
    if (path->type != MSGPACK_OBJECT_ARRAY) return xo_ctx_error(ctx, XO_EBADARGS, "path must be an array");
    if (path->via.array.size == 0) return xo_pack(out, "s", xo_ctx_uid(ctx));
    const msgpack_object &next = path->via.array.ptr[0];
    std::string uid(next.via.str.ptr, next.via.str.size), where = xo_ctx_address(ctx);
    size_t at = uid.find('@'); // "uid@address" reaches another pool
    if (at != std::string::npos) {
        where = uid.substr(at + 1);
        uid.resize(at);
    }
    xo_ref_t *ref = nullptr;
    st = xo_actor_ref(where.c_str(), uid.c_str(), &ref);
    if (st != XO_OK) return st;
    xo_args_t *rest = xo_args_new(1);
    msgpack_pack_array(xo_args_packer(rest), path->via.array.size - 1);
    for (uint32_t i = 1; i < path->via.array.size; i++) msgpack_pack_object(xo_args_packer(rest), path->via.array.ptr[i]);
    xo_result_t *r = nullptr;
    st = xo_call(ref, "relay", rest, 2000, &r);
    xo_ref_free(ref);
    if (st != XO_OK) return st;
    xo_str_t last;
    st = xo_result_unpack(r, "s", &last);
    std::string chain = std::string(xo_ctx_uid(ctx)) + ">" + to_string(last);
    xo_result_free(r);
    return xo_pack(out, "s", chain.c_str());
}

const xo_method_t node_methods[] = {{.name = "relay", .fn = node_relay}};
const xo_actor_class_t node_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Node", .methods = node_methods, .n_methods = 1};

TEST_F(Calls, ABAReentersTheWaitingActor)
{
    xo_ref_t *a = create(&node_class, "A");
    xo_ref_t *b = create(&node_class, "B");
    EXPECT_EQ(call_str(a, "relay", xo_args("[ss]", "B", "A")), "A>B>A");
    EXPECT_EQ(call_str(a, "relay", xo_args("[ssss]", "B", "A", "B", "A")), "A>B>A>B>A");
    xo_ref_free(a);
    xo_ref_free(b);
}

TEST_F(Calls, ABCAFromManyThreadsAtOnce)
{
    xo_ref_t *a = create(&node_class, "A");
    xo_ref_t *b = create(&node_class, "B");
    xo_ref_t *c = create(&node_class, "C");
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&] {
            for (int i = 0; i < 50; i++)
                if (call_str(a, "relay", xo_args("[sss]", "B", "C", "A")) == "A>B>C>A") ok++;
        });
    for (auto &t : ts) t.join();
    EXPECT_EQ(ok.load(), 200);
    xo_ref_free(a);
    xo_ref_free(b);
    xo_ref_free(c);
}

TEST(CrossPool, CallsReachActorsInAnotherPoolOfTheProcess)
{
    xo_pool_t *p1 = nullptr, *p2 = nullptr;
    xo_pool_config_t cfg{};
    cfg.n_threads = 1;
    ASSERT_EQ(xo_pool_start(&cfg, &p1), XO_OK);
    ASSERT_EQ(xo_pool_start(&cfg, &p2), XO_OK);
    xo_ref_t *a = nullptr, *b = nullptr;
    ASSERT_EQ(xo_create_actor(&node_class, nullptr, xo_pool_address(p1), "A", &a), XO_OK);
    ASSERT_EQ(xo_create_actor(&node_class, nullptr, xo_pool_address(p2), "B", &b), XO_OK);
    // A (pool 1) looks "B" up in its own pool: not there; with B's pool address it is found, and B calls back.
    EXPECT_EQ(xo_call(a, "relay", xo_args("[s]", "B"), 1000, nullptr), XO_ENOACTOR);
    std::string b_at = std::string("B@") + xo_pool_address(p2), a_at = std::string("A@") + xo_pool_address(p1);
    EXPECT_EQ(call_str(a, "relay", xo_args("[ss]", b_at.c_str(), a_at.c_str())), "A>B>A");
    xo_ref_free(a);
    xo_ref_free(b);
    xo_pool_stop(p2);
    xo_pool_stop(p1);
}

} // namespace
