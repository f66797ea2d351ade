// Actor lifecycle: hook order, failing hooks, duplicate uids, destroy, stale refs, re-creation, nested creates.
#include <dirent.h>
#include <sched.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "tests/runtime/pool_fixture.h"

namespace {

std::mutex events_mu;
std::vector<std::string> events;

void record(const std::string &e)
{
    std::lock_guard<std::mutex> g(events_mu);
    events.push_back(e);
}

std::vector<std::string> take_events()
{
    std::lock_guard<std::mutex> g(events_mu);
    auto out = events;
    events.clear();
    return out;
}

struct Hooked {
    int fail_init;
    int fail_after_create;
    int fail_before_destroy;
};

xo_status_t hooked_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    auto *h = static_cast<Hooked *>(state);
    xo_status_t st = xo_unpack(args, "|iii", &h->fail_init, &h->fail_after_create, &h->fail_before_destroy);
    if (st != XO_OK) return st;
    record("init");
    if (h->fail_init) return xo_ctx_error(ctx, XO_EMETHOD, "init refused");
    return XO_OK;
}

xo_status_t hooked_after_create(xo_ctx_t *ctx, void *state)
{
    record("after_create");
    if (static_cast<Hooked *>(state)->fail_after_create) return xo_ctx_error(ctx, XO_EMETHOD, "after_create refused");
    return XO_OK;
}

xo_status_t hooked_before_destroy(xo_ctx_t *ctx, void *state)
{
    record("before_destroy");
    if (static_cast<Hooked *>(state)->fail_before_destroy)
        return xo_ctx_error(ctx, XO_EMETHOD, "before_destroy refused");
    return XO_OK;
}

void hooked_fini(void *state) { record("fini"); }

xo_status_t hooked_touch(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    record("touch");
    return xo_pack(out, "s", xo_ctx_uid(ctx));
}

const xo_method_t hooked_methods[] = {{.name = "touch", .fn = hooked_touch}};
const xo_actor_class_t hooked_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATEFUL,
    .name = "Hooked",
    .state_size = sizeof(Hooked),
    .init = hooked_init,
    .after_create = hooked_after_create,
    .before_destroy = hooked_before_destroy,
    .fini = hooked_fini,
    .methods = hooked_methods,
    .n_methods = 1,
};

class Lifecycle : public PoolTest {
  protected:
    void SetUp() override
    {
        PoolTest::SetUp();
        take_events();
    }
};

TEST_F(Lifecycle, HooksRunInOrder)
{
    xo_ref_t *ref = create(&hooked_class, "h1");
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(call_str(ref, "touch"), "h1");
    ASSERT_EQ(xo_destroy_actor(ref), XO_OK) << xo_last_error();
    EXPECT_EQ(take_events(), (std::vector<std::string>{"init", "after_create", "touch", "before_destroy", "fini"}));
    xo_ref_free(ref);
}

TEST_F(Lifecycle, GeneratedUidIsUniqueAndNamesTheClass)
{
    xo_ref_t *a = create(&hooked_class, nullptr);
    xo_ref_t *b = create(&hooked_class, nullptr);
    ASSERT_TRUE(a && b);
    EXPECT_STRNE(xo_ref_uid(a), xo_ref_uid(b));
    EXPECT_EQ(std::string(xo_ref_uid(a)).rfind("Hooked-", 0), 0u);
    EXPECT_EQ(xo_pool_actor_count(pool), 2u);
    xo_ref_free(a);
    xo_ref_free(b);
}

TEST_F(Lifecycle, DuplicateUidIsRefusedAndTheFirstActorSurvives)
{
    xo_ref_t *first = create(&hooked_class, "dup");
    xo_ref_t *second = nullptr;
    EXPECT_EQ(xo_create_actor(&hooked_class, nullptr, addr.c_str(), "dup", &second), XO_EEXIST);
    EXPECT_NE(std::string(xo_last_error()).find("dup"), std::string::npos) << xo_last_error();
    EXPECT_EQ(second, nullptr);
    EXPECT_EQ(call_str(first, "touch"), "dup");
    EXPECT_EQ(xo_pool_actor_count(pool), 1u);
    xo_ref_free(first);
}

TEST_F(Lifecycle, FailingInitLeavesNothingBehindAndSkipsFini)
{
    xo_ref_t *ref = nullptr;
    EXPECT_EQ(xo_create_actor(&hooked_class, xo_args("i", 1), addr.c_str(), "bad", &ref), XO_EHOOK);
    EXPECT_NE(std::string(xo_last_error()).find("init refused"), std::string::npos) << xo_last_error();
    EXPECT_EQ(ref, nullptr);
    xo_ref_t *probe = nullptr;
    EXPECT_EQ(xo_actor_ref(addr.c_str(), "bad", &probe), XO_ENOACTOR);
    EXPECT_EQ(xo_pool_actor_count(pool), 0u);
    EXPECT_EQ(take_events(), (std::vector<std::string>{"init"}));
    // The uid is free again.
    xo_ref_t *again = create(&hooked_class, "bad");
    EXPECT_NE(again, nullptr);
    xo_ref_free(again);
}

TEST_F(Lifecycle, FailingAfterCreateRunsFiniAndLeavesNoActor)
{
    xo_ref_t *ref = nullptr;
    EXPECT_EQ(xo_create_actor(&hooked_class, xo_args("ii", 0, 1), addr.c_str(), "bad2", &ref), XO_EHOOK);
    EXPECT_NE(std::string(xo_last_error()).find("after_create refused"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_pool_actor_count(pool), 0u);
    EXPECT_EQ(take_events(), (std::vector<std::string>{"init", "after_create", "fini"}));
}

TEST_F(Lifecycle, BadConstructorArgumentsAreAHookError)
{
    xo_ref_t *ref = nullptr;
    EXPECT_EQ(xo_create_actor(&hooked_class, xo_args("s", "x"), addr.c_str(), "badargs", &ref), XO_EHOOK);
    EXPECT_NE(std::string(xo_last_error()).find("expected int"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_pool_actor_count(pool), 0u);
}

TEST_F(Lifecycle, FailingBeforeDestroyIsReportedButTheActorIsGone)
{
    xo_ref_t *ref = create(&hooked_class, "bd", xo_args("iii", 0, 0, 1));
    EXPECT_EQ(xo_destroy_actor(ref), XO_EHOOK);
    EXPECT_NE(std::string(xo_last_error()).find("before_destroy refused"), std::string::npos);
    EXPECT_FALSE(xo_has_actor(ref));
    auto ev = take_events();
    EXPECT_EQ(ev.back(), "fini");
    xo_ref_free(ref);
}

TEST_F(Lifecycle, StaleRefsAfterDestroyThenRecreate)
{
    xo_ref_t *ref = create(&hooked_class, "phoenix");
    xo_ref_t *copy = xo_ref_dup(ref);
    EXPECT_TRUE(xo_has_actor(copy));
    ASSERT_EQ(xo_destroy_actor(ref), XO_OK);
    EXPECT_FALSE(xo_has_actor(ref));
    EXPECT_FALSE(xo_has_actor(copy));
    EXPECT_EQ(xo_call(copy, "touch", nullptr, 1000, nullptr), XO_ENOACTOR);
    EXPECT_NE(std::string(xo_last_error()).find("phoenix"), std::string::npos);
    EXPECT_EQ(xo_destroy_actor(copy), XO_ENOACTOR);
    xo_ref_t *reborn = create(&hooked_class, "phoenix");
    ASSERT_NE(reborn, nullptr);
    // The old refs reach the new actor of the same uid.
    EXPECT_TRUE(xo_has_actor(copy));
    EXPECT_EQ(call_str(copy, "touch"), "phoenix");
    xo_ref_free(ref);
    xo_ref_free(copy);
    xo_ref_free(reborn);
}

TEST_F(Lifecycle, UnknownUidAddressAndClassErrors)
{
    xo_ref_t *ref = nullptr;
    EXPECT_EQ(xo_actor_ref(addr.c_str(), "nobody", &ref), XO_ENOACTOR);
    EXPECT_EQ(xo_actor_ref("inproc://no-such-pool", "nobody", &ref), XO_EUNREACHABLE);
    EXPECT_EQ(xo_create_actor(&hooked_class, nullptr, "inproc://no-such-pool", "x", &ref), XO_EUNREACHABLE);
    xo_actor_class_t unversioned = hooked_class;
    unversioned.abi_version = 99;
    unversioned.name = "Unversioned";
    EXPECT_EQ(xo_create_actor(&unversioned, nullptr, addr.c_str(), "x", &ref), XO_EINVAL);
    xo_actor_class_t impostor = hooked_class; // same name, different struct
    EXPECT_EQ(xo_register_class(&hooked_class), XO_OK);
    EXPECT_EQ(xo_register_class(&impostor), XO_EEXIST);
    EXPECT_EQ(ref, nullptr);
}

// ---- nested creation and self-destruction from inside methods ----

xo_status_t maker_make(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_ref_t *child = nullptr;
    xo_status_t st = xo_create_actor(&hooked_class, nullptr, xo_ctx_address(ctx), "child", &child);
    if (st != XO_OK) return st;
    xo_result_t *r = nullptr;
    st = xo_call(child, "touch", nullptr, 1000, &r);
    xo_ref_free(child);
    if (st != XO_OK) return st;
    xo_str_t uid;
    st = xo_result_unpack(r, "s", &uid);
    if (st == XO_OK) st = xo_pack(out, "S", uid);
    xo_result_free(r);
    return st;
}

xo_status_t maker_self_destruct(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_ref_t *self = xo_ctx_self(ctx);
    xo_status_t st = xo_destroy_actor(self);
    xo_ref_free(self);
    if (st != XO_OK) return st;
    // The actor is dead but this activation still runs with its state intact.
    return xo_pack(out, "s", "bye");
}

xo_status_t maker_before_destroy(xo_ctx_t *ctx, void *state)
{
    record("before_destroy");
    return XO_OK;
}

const xo_method_t maker_methods[] = {{.name = "make", .fn = maker_make},
                                     {.name = "self_destruct", .fn = maker_self_destruct}};
const xo_actor_class_t maker_class = {.abi_version = XO_CLASS_ABI_V1,
                                      .name = "Maker",
                                      .before_destroy = maker_before_destroy,
                                      .fini = hooked_fini,
                                      .methods = maker_methods,
                                      .n_methods = 2};

TEST_F(Lifecycle, MethodCreatesAndCallsAnotherActor)
{
    xo_ref_t *maker = create(&maker_class, "maker");
    EXPECT_EQ(call_str(maker, "make"), "child");
    xo_ref_t *child = nullptr;
    EXPECT_EQ(xo_actor_ref(addr.c_str(), "child", &child), XO_OK);
    xo_ref_free(child);
    xo_ref_free(maker);
}

TEST_F(Lifecycle, ActorCanDestroyItself)
{
    xo_ref_t *maker = create(&maker_class, "kamikaze");
    take_events();
    EXPECT_EQ(call_str(maker, "self_destruct"), "bye");
    EXPECT_FALSE(xo_has_actor(maker));
    EXPECT_EQ(take_events(), (std::vector<std::string>{"before_destroy", "fini"}));
    xo_ref_free(maker);
}

TEST_F(Lifecycle, PoolStopDestroysRemainingActors)
{
    xo_ref_t *a = create(&hooked_class, "left1");
    xo_ref_t *b = create(&hooked_class, "left2");
    take_events();
    xo_pool_stop(pool);
    pool = nullptr;
    auto ev = take_events();
    EXPECT_EQ(std::count(ev.begin(), ev.end(), "before_destroy"), 2);
    EXPECT_EQ(std::count(ev.begin(), ev.end(), "fini"), 2);
    EXPECT_FALSE(xo_has_actor(a));
    EXPECT_EQ(xo_call(a, "touch", nullptr, 100, nullptr), XO_EUNREACHABLE);
    xo_ref_free(a);
    xo_ref_free(b);
}

TEST(Pools, SameAddressTwiceIsRefused)
{
    xo_pool_config_t cfg{};
    cfg.address = "inproc://twice";
    cfg.n_threads = 1;
    xo_pool_t *p1 = nullptr, *p2 = nullptr;
    ASSERT_EQ(xo_pool_start(&cfg, &p1), XO_OK);
    EXPECT_EQ(xo_pool_start(&cfg, &p2), XO_EEXIST);
    xo_pool_stop(p1);
}

int scheduler_threads()
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    while (struct dirent *e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name.rfind("xo-sched-", 0) == 0) n++;
    }
    closedir(d);
    return n;
}

// Scheduler threads name themselves once running: wait (up to 2 s) for the count to reach want, and return it.
int scheduler_threads_reaching(int want)
{
    int n = scheduler_threads();
    for (int i = 0; i < 200 && n < want; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        n = scheduler_threads();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // one more look: no extra thread comes late
    return scheduler_threads();
}

// A pool started with n_threads 0 by a thread bound to one CPU runs one scheduler thread, not one per CPU.
TEST(Pools, DefaultThreadsFollowTheCpuBinding)
{
    cpu_set_t all, one;
    ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
    if (CPU_COUNT(&all) < 2) GTEST_SKIP() << "needs 2 CPUs to tell a binding from none";
    int first = 0;
    while (!CPU_ISSET(first, &all)) first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    int before = scheduler_threads();
    xo_pool_t *bound = nullptr, *unbound = nullptr;
    ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    xo_status_t st = xo_pool_start(nullptr, &bound);
    ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
    ASSERT_EQ(st, XO_OK) << xo_last_error();
    EXPECT_EQ(scheduler_threads_reaching(before + 1) - before, 1);
    ASSERT_EQ(xo_pool_start(nullptr, &unbound), XO_OK) << xo_last_error();
    EXPECT_EQ(scheduler_threads_reaching(before + 1 + CPU_COUNT(&all)) - before, 1 + CPU_COUNT(&all));
    xo_pool_stop(unbound);
    xo_pool_stop(bound);
}

} // namespace
