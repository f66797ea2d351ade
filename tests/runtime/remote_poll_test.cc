// Frames taken by spinning threads (runtime/remote_poll.c): idle schedulers and callers waiting for a reply take
// shared-memory frames themselves, and hand the channel back to the I/O thread (wake-up armed) when they stop. A frame
// lost in a hand-over shows up here as a call that times out or a tell that never arrives.
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/runtime/pool_fixture.h"
#include "xoscar/host.h"

namespace {

// The devbuf test module brings StageOwner.spin(ms), which holds its pool's thread without yielding.
const char *kModules[] = {XO_TEST_MODULE_PATH, XO_DEVBUF_MODULE_PATH};

class RemotePoll : public ::testing::Test {
  protected:
    void start(unsigned sub_threads)
    {
        xo_sub_pool_config_t sub{};
        sub.n_threads = sub_threads;
        xo_host_config_t cfg{};
        cfg.n_sub_pools = 1;
        cfg.sub_pools = &sub;
        cfg.modules = kModules;
        cfg.n_modules = 2;
        cfg.pool_binary = XO_POOL_BINARY;
        ASSERT_EQ(xo_host_start(&cfg, &host), XO_OK) << xo_last_error();
    }
    void TearDown() override
    {
        if (host) xo_host_stop(host);
    }
    xo_ref_t *place(const char *cls)
    {
        xo_placement_t p{};
        p.strategy = "process_index";
        p.process_index = 1;
        xo_ref_t *ref = nullptr;
        EXPECT_EQ(xo_host_create_actor(host, cls, nullptr, nullptr, &p, &ref), XO_OK) << xo_last_error();
        return ref;
    }
    xo_host_t *host = nullptr;
};

// Several threads call and tell one actor in a sub pool, with pauses on both sides of the schedulers' spin time (so
// that pollers come and go, and the schedulers sleep and wake): every call is answered and every tell arrives.
void Hammer(xo_host_t *, xo_ref_t *counter, unsigned sub_threads)
{
    const int kThreads = 4, kRounds = 300;
    std::atomic<int> failures{0};
    std::vector<std::thread> ts;
    auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([&, t] {
            std::mt19937 rng(1234 + t + 10 * sub_threads);
            for (int i = 0; i < kRounds; i++) {
                if (xo_tell(counter, "add", xo_args("l", (int64_t)1)) != XO_OK) failures++;
                xo_result_t *r = nullptr;
                if (xo_call(counter, "add", xo_args("l", (int64_t)1), 5000, &r) != XO_OK) failures++;
                xo_result_free(r);
                unsigned pause = rng() % 4;
                if (pause == 1) usleep(20);
                if (pause == 2) usleep(150); // longer than a scheduler's spin: it sleeps, the I/O thread takes over
            }
        });
    for (auto &t : ts) t.join();
    EXPECT_EQ(failures.load(), 0) << xo_last_error();
    EXPECT_EQ(call_i64(counter, "get"), (int64_t)kThreads * kRounds * 2);
    // Nothing waited for a timeout: 2400 messages take well under a second when no frame is left behind.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST_F(RemotePoll, ManyThreadsCallAndTellOneSchedulerSubPool)
{
    start(1);
    xo_ref_t *counter = place("Counter");
    ASSERT_NE(counter, nullptr);
    Hammer(host, counter, 1);
    xo_ref_free(counter);
}

TEST_F(RemotePoll, ManyThreadsCallAndTellTwoSchedulerSubPool)
{
    start(2);
    xo_ref_t *counter = place("Counter");
    ASSERT_NE(counter, nullptr);
    Hammer(host, counter, 2);
    xo_ref_free(counter);
}

// A caller that gives up waiting (timeout) stops polling; the reply that comes later must not block the next calls.
TEST_F(RemotePoll, ReplyAfterTheCallerGaveUpLeavesTheChannelWorking)
{
    start(1);
    xo_ref_t *echo = place("Echo");
    ASSERT_NE(echo, nullptr);
    EXPECT_EQ(xo_call(echo, "sleep_ms", xo_args("l", (int64_t)300), 50, nullptr), XO_ETIMEDOUT);
    usleep(400 * 1000); // the late reply arrives while nobody polls: the I/O thread takes it
    for (int i = 0; i < 200; i++) ASSERT_EQ(call_i64(echo, "pid"), xo_host_sub_pool_pid(host, 1));
    xo_ref_free(echo);
}

// A scheduler that takes a request and goes to run it keeps its pool's connections for a short while (remote_pause.c,
// "pausing"), so that the next requests wait for it rather than go to the I/O thread. When what it runs takes long,
// the I/O thread must take them over: a query it answers by itself (has_actor) gets through while the pool's only
// thread is held for a second.
TEST_F(RemotePoll, RequestsBehindABusySchedulerWaitOnlyBriefly)
{
    start(1);
    xo_ref_t *owner = place("StageOwner");
    ASSERT_NE(owner, nullptr);
    for (int i = 0; i < 20; i++) ASSERT_TRUE(xo_has_actor(owner)); // the scheduler polls the connection
    xo_future_t *spin = nullptr; // sent at once, so that the polling scheduler takes it (not the I/O thread)
    ASSERT_EQ(xo_send(owner, "spin", xo_args("l", (int64_t)1000), &spin), XO_OK) << xo_last_error();
    usleep(100 * 1000); // spin has started: the scheduler paused on its way to run it
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(xo_has_actor(owner));
    auto waited_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(waited_ms, 300); // the pause is 200 us; the spin has 900 ms to go
    EXPECT_EQ(xo_future_wait(spin, 10000, nullptr), XO_OK) << xo_last_error();
    xo_future_free(spin);
    xo_ref_free(owner);
}

// The process's open fds; with what, what each one is (for a failure message).
size_t OpenFds(std::string *what = nullptr)
{
    size_t n = 0;
    if (DIR *d = opendir("/proc/self/fd")) {
        while (struct dirent *e = readdir(d))
            if (e->d_name[0] != '.') {
                n++;
                char path[300], target[256];
                snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
                ssize_t len = what ? readlink(path, target, sizeof target - 1) : -1;
                if (len > 0) *what += std::string(e->d_name) + " -> " + std::string(target, (size_t)len) + "\n";
            }
        closedir(d);
    }
    return n;
}

// Each sending thread keeps the connection it last sent on (remote_client.c, "senders"). Threads that come and go,
// and the main thread, send to a sub pool; once the host has stopped, the connection is gone from every cache: no fd
// stays open for it, and a tell to the dead pool fails instead of going into a ring nobody reads.
TEST_F(RemotePoll, SendersThatComeAndGoKeepNoDeadConnectionOpen)
{
    std::string before_list, after_list;
    size_t fds_before = OpenFds(&before_list);
    start(1);
    xo_ref_t *counter = place("Counter");
    ASSERT_NE(counter, nullptr);
    const int kThreads = 6, kTells = 200;
    for (int round = 0; round < 2; round++) { // a second round: new threads, the same connection
        std::vector<std::thread> ts;
        for (int t = 0; t < kThreads; t++)
            ts.emplace_back([&] {
                for (int i = 0; i < kTells; i++) ASSERT_EQ(xo_tell(counter, "add", xo_args("l", (int64_t)1)), XO_OK);
                EXPECT_GE(call_i64(counter, "get"), kTells);
            });
        for (auto &t : ts) t.join();
    }
    ASSERT_EQ(xo_tell(counter, "add", xo_args("l", (int64_t)1)), XO_OK);
    EXPECT_EQ(call_i64(counter, "get"), (int64_t)2 * kThreads * kTells + 1);
    xo_host_stop(host);
    host = nullptr;
    // The process keeps its I/O thread's epoll and eventfd once started: those, nothing else.
    EXPECT_LE(OpenFds(&after_list), fds_before + 2) << "before:\n" << before_list << "after:\n" << after_list;
    EXPECT_NE(xo_tell(counter, "add", xo_args("l", (int64_t)1)), XO_OK);
    xo_ref_free(counter);
}

} // namespace
