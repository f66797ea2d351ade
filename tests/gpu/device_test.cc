// gpu/: the device interface (include/xoscar/gpu.h), one suite instantiated for every backend (host, cuda), and the
// kernels example module (examples/kernels) run in an actor on each. The cuda instances skip with the reason where
// the backend is not built or the machine has no CUDA device. Each case runs in its own process (ctest).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpu/device.h"
#include "xoscar/gpu.h"
#include "xoscar/module.h"
#include "xoscar/xoscar.h"

namespace {

constexpr uint64_t kCapacity = 64ull << 20;

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

size_t rounded(size_t n) { return (n + XO_DEVICE_ALIGN - 1) / XO_DEVICE_ALIGN * XO_DEVICE_ALIGN; }

// A host function that holds its stream until the test opens the gate: everything queued behind it is then provably
// still pending when the enqueuing calls have returned (so they are asynchronous). It gives up after 10 s, so that a
// broken backend fails the test instead of hanging it.
struct Gate {
    std::atomic<bool> open{false};
    std::atomic<bool> ran{false};
    std::atomic<bool> timed_out{false};
    static void fn(void *arg)
    {
        Gate *g = static_cast<Gate *>(arg);
        g->ran = true;
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!g->open.load()) {
            if (std::chrono::steady_clock::now() > end) {
                g->timed_out = true;
                return;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
};

std::string hex(const xo_device_ipc_handle_t &h)
{
    static const char d[] = "0123456789abcdef";
    std::string s;
    for (unsigned char c : h.bytes) {
        s += d[c >> 4];
        s += d[c & 15];
    }
    return s;
}

// Runs the IPC peer (fork + exec) and returns its exit status, or -1 when it did not exit normally.
int run_peer(const std::string &backend, const xo_device_ipc_handle_t &h, size_t n, int expect, int write)
{
    std::string hx = hex(h), ns = std::to_string(n), es = std::to_string(expect), ws = std::to_string(write);
    pid_t pid = fork();
    if (pid == 0) {
        execl(XO_GPU_IPC_PEER, XO_GPU_IPC_PEER, backend.c_str(), hx.c_str(), ns.c_str(), es.c_str(), ws.c_str(),
              (char *)nullptr);
        _exit(127);
    }
    if (pid < 0) return -2;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -3;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A peer started with its stdout on a pipe, for the event tests, which talk to it while it runs.
struct Peer {
    pid_t pid = -1;
    int out = -1;
    explicit Peer(const std::vector<std::string> &args)
    {
        int fds[2];
        if (pipe(fds) != 0) return;
        pid = fork();
        if (pid == 0) {
            dup2(fds[1], STDOUT_FILENO);
            close(fds[0]);
            close(fds[1]);
            std::vector<char *> argv{const_cast<char *>(XO_GPU_IPC_PEER)};
            for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
            argv.push_back(nullptr);
            execv(XO_GPU_IPC_PEER, argv.data());
            _exit(127);
        }
        close(fds[1]);
        out = fds[0];
    }
    // A line of the peer's output ("" when it ended or said nothing within 30 s).
    std::string line()
    {
        std::string s;
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        char c;
        while (std::chrono::steady_clock::now() < end) {
            struct timeval tv = {0, 100000};
            fd_set set;
            FD_ZERO(&set);
            FD_SET(out, &set);
            if (select(out + 1, &set, nullptr, nullptr, &tv) <= 0) continue;
            if (read(out, &c, 1) != 1) break;
            if (c == '\n') return s;
            s += c;
        }
        return "";
    }
    int wait()
    {
        int status = 0;
        if (pid <= 0 || waitpid(pid, &status, 0) != pid) return -3;
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    ~Peer()
    {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
        if (out >= 0) close(out);
    }
};

class DeviceTest : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override
    {
        be = xo_device_backend_find(GetParam().c_str());
        if (!be) {
            ASSERT_EQ(GetParam(), "cuda") << "the host backend is always built";
            GTEST_SKIP() << "no CUDA device: the cuda backend is not in this build (no CUDA toolkit, or XO_WITH_CUDA=OFF)";
        }
        size_t n = 0;
        xo_status_t st = xo_device_discover(be, nullptr, 0, &n);
        if (n == 0) {
            ASSERT_EQ(GetParam(), "cuda") << "host discovery failed: " << xo_last_error();
            GTEST_SKIP() << "no CUDA device: " << xo_last_error() << " (" << xo_status_name(st) << ")";
        }
        xo_device_config_t cfg{};
        cfg.capacity = kCapacity;
        ASSERT_EQ(xo_device_open(be, 0, &cfg, &dev), XO_OK) << xo_last_error();
    }
    void TearDown() override
    {
        if (dev) xo_device_close(dev);
    }

    bool is_host() const { return GetParam() == "host"; }

    const xo_device_ops_t *be = nullptr;
    xo_device_t *dev = nullptr;
};

// ---- discovery and opening -----------------------------------------------------------------------------------------

TEST_P(DeviceTest, DiscoverDescribesTheDevices)
{
    std::vector<xo_device_info_t> infos(8);
    size_t n = 0;
    ASSERT_EQ(xo_device_discover(be, infos.data(), infos.size(), &n), XO_OK) << xo_last_error();
    ASSERT_GE(n, 1u);
    const xo_device_info_t &d = infos[0];
    EXPECT_EQ(d.index, 0);
    EXPECT_GT(std::strlen(d.name), 0u);
    EXPECT_GT(d.mem_total, 0u);
    std::string sysfs;
    if (is_host()) {
        std::ifstream("/sys/devices/system/cpu/online") >> sysfs;
        EXPECT_EQ(d.pci_bus_id[0], '\0');
    } else if (d.pci_bus_id[0]) {
        std::ifstream(std::string("/sys/bus/pci/devices/") + d.pci_bus_id + "/local_cpulist") >> sysfs;
    }
    if (!sysfs.empty()) { EXPECT_EQ(std::string(d.local_cpulist), sysfs); }
    if (is_host()) { EXPECT_FALSE(sysfs.empty()); }
}

TEST_P(DeviceTest, RegistryIsOrderedAndNamed)
{
    EXPECT_EQ(xo_device_backend_find(GetParam().c_str()), be);
    EXPECT_STREQ(xo_device_backend_name(be), GetParam().c_str());
    EXPECT_EQ(xo_device_backend_find("no-such-backend"), nullptr);
    // The host backend is always last: GPUs first.
    size_t i = 0;
    while (xo_device_backend_at(i + 1)) i++;
    EXPECT_STREQ(xo_device_backend_name(xo_device_backend_at(i)), "host");
    EXPECT_EQ(xo_device_backend(dev), be);
    EXPECT_EQ(xo_device_index(dev), 0);
}

TEST_P(DeviceTest, OpeningAMissingDeviceFails)
{
    xo_device_t *other = nullptr;
    xo_status_t st = xo_device_open(be, 1000, nullptr, &other);
    EXPECT_NE(st, XO_OK);
    EXPECT_EQ(other, nullptr);
    EXPECT_GT(std::strlen(xo_last_error()), 0u);
    if (is_host()) {
        EXPECT_EQ(st, XO_EINVAL);
        EXPECT_TRUE(has(xo_last_error(), "host device 1000 does not exist")) << xo_last_error();
    }
}

// ---- memory --------------------------------------------------------------------------------------------------------

TEST_P(DeviceTest, AllocFreeAndMemInfoReturnToStart)
{
    xo_device_mem_info_t m0{}, m1{}, m2{};
    ASSERT_EQ(xo_device_mem_info(dev, &m0), XO_OK) << xo_last_error();
    EXPECT_EQ(m0.total, kCapacity);
    EXPECT_EQ(m0.used, 0u);
    EXPECT_LE(m0.free, m0.total);

    const size_t sizes[] = {1, 1000, 1 << 20, 3 * 4096 + 7};
    std::vector<void *> ptrs;
    size_t expect_used = 0;
    for (size_t s : sizes) {
        void *p = nullptr;
        ASSERT_EQ(xo_device_alloc(dev, s, &p), XO_OK) << xo_last_error();
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % XO_DEVICE_ALIGN, 0u);
        ptrs.push_back(p);
        expect_used += rounded(s);
    }
    ASSERT_EQ(xo_device_mem_info(dev, &m1), XO_OK);
    EXPECT_EQ(m1.used, expect_used);
    EXPECT_LE(m1.free, kCapacity - expect_used);
    if (is_host()) { EXPECT_EQ(m1.free, kCapacity - expect_used); }

    void *zero = nullptr;
    EXPECT_EQ(xo_device_alloc(dev, 0, &zero), XO_EINVAL);
    EXPECT_EQ(zero, nullptr);

    // Free in another order than allocated: the host allocator merges the ranges back into one.
    for (size_t i : {2, 0, 3, 1}) ASSERT_EQ(xo_device_free(dev, ptrs[i]), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_device_mem_info(dev, &m2), XO_OK);
    EXPECT_EQ(m2.used, m0.used);
    if (is_host()) {
        EXPECT_EQ(m2.free, m0.free);
        void *all = nullptr; // the whole capacity in one piece: nothing leaked, nothing fragmented
        ASSERT_EQ(xo_device_alloc(dev, kCapacity, &all), XO_OK) << xo_last_error();
        EXPECT_EQ(xo_device_free(dev, all), XO_OK);
    }
}

TEST_P(DeviceTest, CapacityExhaustionNamesRequestedAndFreeBytes)
{
    void *p = nullptr;
    EXPECT_EQ(xo_device_alloc(dev, kCapacity + 1, &p), XO_ENOMEM);
    EXPECT_EQ(p, nullptr);
    std::string e = xo_last_error();
    EXPECT_TRUE(has(e, std::to_string(kCapacity + 1) + " bytes")) << e;
    EXPECT_TRUE(has(e, std::to_string(kCapacity) + " of " + std::to_string(kCapacity) + " bytes free")) << e;

    void *big = nullptr, *more = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 48u << 20, &big), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_device_alloc(dev, 32u << 20, &more), XO_ENOMEM);
    e = xo_last_error();
    EXPECT_TRUE(has(e, "cannot allocate 33554432 bytes: 16777216 of 67108864 bytes free")) << e;
    EXPECT_TRUE(has(e, GetParam() + ":0")) << e;
    ASSERT_EQ(xo_device_free(dev, big), XO_OK);
    ASSERT_EQ(xo_device_alloc(dev, 32u << 20, &more), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_device_free(dev, more), XO_OK);
}

TEST_P(DeviceTest, DoubleFreeAndForeignPointersFailClearly)
{
    void *p = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 4096, &p), XO_OK);
    EXPECT_EQ(xo_device_free(dev, static_cast<char *>(p) + 256), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "inside an allocation")) << xo_last_error();
    ASSERT_EQ(xo_device_free(dev, p), XO_OK);
    EXPECT_EQ(xo_device_free(dev, p), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "freed already")) << xo_last_error();
    EXPECT_EQ(xo_device_free(dev, nullptr), XO_EINVAL);

    // A freed pointer and a host pointer are not device memory.
    char host[64] = {};
    EXPECT_EQ(xo_device_memcpy(dev, p, host, sizeof host, XO_MEMCPY_HOST_TO_DEVICE, nullptr), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "destination")) << xo_last_error();
    EXPECT_EQ(xo_device_memcpy(dev, host, host + 32, 16, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "source")) << xo_last_error();
    EXPECT_EQ(xo_device_memset(dev, host, 0, sizeof host, nullptr), XO_EINVAL);

    // A range that runs past the end of its allocation.
    void *q = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 1024, &q), XO_OK);
    EXPECT_EQ(xo_device_memcpy(dev, static_cast<char *>(q) + 1000, host, 64, XO_MEMCPY_HOST_TO_DEVICE, nullptr),
              XO_EINVAL);
    EXPECT_EQ(xo_device_memcpy(dev, q, host, 16, static_cast<xo_memcpy_kind_t>(42), nullptr), XO_EINVAL);

    // Closing something that is not an import; exporting something that is not an allocation.
    EXPECT_EQ(xo_device_ipc_close(dev, q), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "not an open import")) << xo_last_error();
    xo_device_ipc_handle_t h;
    EXPECT_EQ(xo_device_ipc_export(dev, host, &h), XO_EINVAL);
    EXPECT_EQ(xo_device_free(dev, q), XO_OK);
}

TEST_P(DeviceTest, CopiesBothWaysAndWithinTheDevice)
{
    const size_t n = (1 << 20) + 13;
    std::vector<unsigned char> src(n), out(n, 0);
    std::mt19937 rng(42);
    for (auto &c : src) c = static_cast<unsigned char>(rng());
    void *a = nullptr, *b = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, n, &a), XO_OK);
    ASSERT_EQ(xo_device_alloc(dev, n + 100, &b), XO_OK);
    ASSERT_EQ(xo_device_memcpy(dev, a, src.data(), n, XO_MEMCPY_HOST_TO_DEVICE, nullptr), XO_OK) << xo_last_error();
    // Device to device, into an interior pointer of b.
    char *b100 = static_cast<char *>(b) + 100;
    ASSERT_EQ(xo_device_memcpy(dev, b100, a, n, XO_MEMCPY_DEVICE_TO_DEVICE, nullptr), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_device_memset(dev, a, 0, n, nullptr), XO_OK);  // the copy in b must not follow a
    ASSERT_EQ(xo_device_memcpy(dev, out.data(), b100, n, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    EXPECT_TRUE(out == src);

    ASSERT_EQ(xo_device_memset(dev, b, 0xAB, 100, nullptr), XO_OK);
    std::vector<unsigned char> head(101);
    ASSERT_EQ(xo_device_memcpy(dev, head.data(), b, head.size(), XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    for (size_t i = 0; i < 100; i++) ASSERT_EQ(head[i], 0xAB) << i;
    EXPECT_EQ(head[100], src[0]);

    ASSERT_EQ(xo_device_memcpy(dev, out.data(), a, 4096, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    for (size_t i = 0; i < 4096; i++) ASSERT_EQ(out[i], 0) << i;
    EXPECT_EQ(xo_device_memcpy(dev, out.data(), a, 0, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    EXPECT_EQ(xo_device_free(dev, a), XO_OK);
    EXPECT_EQ(xo_device_free(dev, b), XO_OK);
}

// ---- streams and events ----------------------------------------------------------------------------------------------

// Many asynchronous operations queued behind a gate: they are still pending when the calls return, and once the gate
// opens they run in the order queued (each chunk of b gets the value a had when its copy was queued).
TEST_P(DeviceTest, StreamRunsManyAsyncOpsInOrder)
{
    const size_t chunk = 4096, rounds = 256;
    void *a = nullptr, *b = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, chunk, &a), XO_OK);
    ASSERT_EQ(xo_device_alloc(dev, chunk * rounds, &b), XO_OK);
    xo_device_stream_t *s = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s), XO_OK) << xo_last_error();
    xo_device_event_t *done = nullptr;
    ASSERT_EQ(xo_device_event_create(dev, &done), XO_OK);

    Gate gate;
    ASSERT_EQ(xo_device_launch_host(s, Gate::fn, &gate), XO_OK) << xo_last_error();
    for (size_t i = 0; i < rounds; i++) {
        ASSERT_EQ(xo_device_memset(dev, a, static_cast<int>(i & 0xff), chunk, s), XO_OK);
        ASSERT_EQ(xo_device_memcpy(dev, static_cast<char *>(b) + i * chunk, a, chunk, XO_MEMCPY_DEVICE_TO_DEVICE, s),
                  XO_OK);
    }
    ASSERT_EQ(xo_device_event_record(done, s), XO_OK);
    // Everything is queued behind the closed gate.
    EXPECT_EQ(xo_device_event_query(done), XO_EAGAIN);
    gate.open = true;
    // Queued after the gate opened: CUDA runs a copy to pageable host memory before it returns, which would wait for
    // the gate.
    std::vector<unsigned char> out(chunk * rounds, 0xEE);
    ASSERT_EQ(xo_device_memcpy(dev, out.data(), b, out.size(), XO_MEMCPY_DEVICE_TO_HOST, s), XO_OK);
    ASSERT_EQ(xo_device_stream_synchronize(s), XO_OK) << xo_last_error();
    EXPECT_TRUE(gate.ran);
    EXPECT_FALSE(gate.timed_out);
    EXPECT_EQ(xo_device_event_query(done), XO_OK);
    for (size_t i = 0; i < rounds; i++)
        for (size_t j = 0; j < chunk; j += 512) ASSERT_EQ(out[i * chunk + j], i & 0xff) << "chunk " << i;

    xo_device_event_destroy(done);
    xo_device_stream_destroy(s);
    EXPECT_EQ(xo_device_free(dev, a), XO_OK);
    EXPECT_EQ(xo_device_free(dev, b), XO_OK);
}

TEST_P(DeviceTest, EventsCompleteWhenTheStreamReachesThem)
{
    xo_device_stream_t *s = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s), XO_OK);
    xo_device_event_t *ev = nullptr;
    ASSERT_EQ(xo_device_event_create(dev, &ev), XO_OK);
    // Never recorded: complete.
    EXPECT_EQ(xo_device_event_query(ev), XO_OK);
    EXPECT_EQ(xo_device_event_synchronize(ev), XO_OK);

    Gate gate;
    ASSERT_EQ(xo_device_launch_host(s, Gate::fn, &gate), XO_OK);
    ASSERT_EQ(xo_device_event_record(ev, s), XO_OK);
    EXPECT_EQ(xo_device_event_query(ev), XO_EAGAIN);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(xo_device_event_query(ev), XO_EAGAIN);
    std::thread opener([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        gate.open = true;
    });
    EXPECT_EQ(xo_device_event_synchronize(ev), XO_OK) << xo_last_error();
    EXPECT_TRUE(gate.open.load()); // the wait really waited for the gate
    EXPECT_EQ(xo_device_event_query(ev), XO_OK);
    opener.join();
    EXPECT_FALSE(gate.timed_out);

    // Recording again makes it pending again until the stream gets there.
    Gate gate2;
    ASSERT_EQ(xo_device_launch_host(s, Gate::fn, &gate2), XO_OK);
    ASSERT_EQ(xo_device_event_record(ev, s), XO_OK);
    EXPECT_EQ(xo_device_event_query(ev), XO_EAGAIN);
    gate2.open = true;
    EXPECT_EQ(xo_device_event_synchronize(ev), XO_OK);
    EXPECT_EQ(xo_device_event_query(ev), XO_OK);

    xo_device_event_destroy(ev);
    xo_device_stream_destroy(s);
}

// A stream that waits on another stream's event copies what that stream wrote, not what was there before.
TEST_P(DeviceTest, StreamWaitsForAnotherStreamsEvent)
{
    const size_t n = 1 << 16;
    void *a = nullptr, *b = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, n, &a), XO_OK);
    ASSERT_EQ(xo_device_alloc(dev, n, &b), XO_OK);
    ASSERT_EQ(xo_device_memset(dev, a, 1, n, nullptr), XO_OK);
    xo_device_stream_t *s1 = nullptr, *s2 = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s1), XO_OK);
    ASSERT_EQ(xo_device_stream_create(dev, &s2), XO_OK);
    xo_device_event_t *ev = nullptr;
    ASSERT_EQ(xo_device_event_create(dev, &ev), XO_OK);

    Gate gate;
    ASSERT_EQ(xo_device_launch_host(s1, Gate::fn, &gate), XO_OK);
    ASSERT_EQ(xo_device_memset(dev, a, 7, n, s1), XO_OK);
    ASSERT_EQ(xo_device_event_record(ev, s1), XO_OK);
    ASSERT_EQ(xo_device_stream_wait_event(s2, ev), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_device_memcpy(dev, b, a, n, XO_MEMCPY_DEVICE_TO_DEVICE, s2), XO_OK);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // s2 would have copied by now if it did not wait
    gate.open = true;
    std::vector<unsigned char> out(n);
    ASSERT_EQ(xo_device_memcpy(dev, out.data(), b, n, XO_MEMCPY_DEVICE_TO_HOST, s2), XO_OK);
    ASSERT_EQ(xo_device_stream_synchronize(s2), XO_OK);
    EXPECT_FALSE(gate.timed_out);
    EXPECT_EQ(out[0], 7);
    EXPECT_EQ(out[n - 1], 7);

    xo_device_event_destroy(ev);
    xo_device_stream_destroy(s1);
    xo_device_stream_destroy(s2);
    EXPECT_EQ(xo_device_free(dev, a), XO_OK);
    EXPECT_EQ(xo_device_free(dev, b), XO_OK);
}

// Threads with their own streams on one device, allocating, copying and freeing at once.
TEST_P(DeviceTest, ConcurrentStreamsFromManyThreads)
{
    const int threads = 4, rounds = 50;
    const size_t n = 8192;
    std::atomic<int> failures{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; t++) {
        ts.emplace_back([&, t] {
            xo_device_stream_t *s = nullptr;
            if (xo_device_stream_create(dev, &s) != XO_OK) {
                failures++;
                return;
            }
            std::vector<unsigned char> out(n);
            for (int r = 0; r < rounds; r++) {
                void *a = nullptr, *b = nullptr;
                int v = (t * 31 + r) & 0xff;
                if (xo_device_alloc(dev, n, &a) != XO_OK || xo_device_alloc(dev, n, &b) != XO_OK) {
                    failures++;
                    break;
                }
                bool ok = xo_device_memset(dev, a, v, n, s) == XO_OK &&
                          xo_device_memcpy(dev, b, a, n, XO_MEMCPY_DEVICE_TO_DEVICE, s) == XO_OK &&
                          xo_device_memcpy(dev, out.data(), b, n, XO_MEMCPY_DEVICE_TO_HOST, s) == XO_OK &&
                          xo_device_stream_synchronize(s) == XO_OK;
                if (!ok || out[0] != v || out[n - 1] != v) failures++;
                xo_device_free(dev, a);
                xo_device_free(dev, b);
            }
            xo_device_stream_destroy(s);
        });
    }
    for (auto &th : ts) th.join();
    EXPECT_EQ(failures.load(), 0);
    xo_device_mem_info_t mi{};
    ASSERT_EQ(xo_device_mem_info(dev, &mi), XO_OK);
    EXPECT_EQ(mi.used, 0u);
}

TEST_P(DeviceTest, ObjectsOfAnotherDeviceAreRefused)
{
    xo_device_t *other = nullptr;
    xo_device_config_t cfg{};
    cfg.capacity = 1 << 20;
    ASSERT_EQ(xo_device_open(be, 0, &cfg, &other), XO_OK) << xo_last_error();
    xo_device_stream_t *s = nullptr;
    ASSERT_EQ(xo_device_stream_create(other, &s), XO_OK);
    xo_device_event_t *ev = nullptr;
    ASSERT_EQ(xo_device_event_create(dev, &ev), XO_OK);
    void *p = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 256, &p), XO_OK);
    EXPECT_EQ(xo_device_memset(dev, p, 0, 256, s), XO_EINVAL);
    EXPECT_EQ(xo_device_event_record(ev, s), XO_EINVAL);
    EXPECT_EQ(xo_device_stream_wait_event(s, ev), XO_EINVAL);
    // Memory of one opened device is not memory of the other.
    EXPECT_EQ(xo_device_free(other, p), XO_EINVAL);
    xo_device_event_destroy(ev);
    // Closing a device with a stream and an allocation still open frees them (the sanitizers check that).
    void *q = nullptr;
    ASSERT_EQ(xo_device_alloc(other, 1000, &q), XO_OK);
    xo_device_close(other);
    EXPECT_EQ(xo_device_free(dev, p), XO_OK);
}

TEST_P(DeviceTest, LaunchKernelIsForDevicesWithKernels)
{
    xo_device_stream_t *s = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s), XO_OK);
    unsigned g[3] = {1, 1, 1};
    if (is_host()) {
        EXPECT_EQ(xo_device_launch_kernel(s, reinterpret_cast<const void *>(&Gate::fn), g, g, 0, nullptr), XO_ENOTSUP);
        EXPECT_TRUE(has(xo_last_error(), "xo_device_launch_host")) << xo_last_error();
        EXPECT_EQ(xo_device_stream_native(s), nullptr);
    } else {
        EXPECT_NE(xo_device_stream_native(s), nullptr);
    }
    xo_device_stream_destroy(s);
}

// ---- IPC -------------------------------------------------------------------------------------------------------------

// Export → import in another process (fork + exec: a fresh process, no inherited mapping or CUDA context) → the child
// checks the parent's bytes and writes its own → the parent sees them, at the right offset.
TEST_P(DeviceTest, IpcChildProcessWritesParentSees)
{
    const size_t n = 1 << 20, off = 4096;
    void *p = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, n, &p), XO_OK);
    ASSERT_EQ(xo_device_memset(dev, p, 0x5A, n, nullptr), XO_OK);
    xo_device_ipc_handle_t h;
    ASSERT_EQ(xo_device_ipc_export(dev, static_cast<char *>(p) + off, &h), XO_OK) << xo_last_error();

    EXPECT_EQ(run_peer(GetParam(), h, n - off, 0x5A, 0xC3), 0) << "see the peer's stderr above";

    std::vector<unsigned char> out(n);
    ASSERT_EQ(xo_device_memcpy(dev, out.data(), p, n, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    EXPECT_EQ(out[0], 0x5A);
    EXPECT_EQ(out[off - 1], 0x5A);
    EXPECT_EQ(out[off], 0xC3);
    EXPECT_EQ(out[n - 1], 0xC3);
    size_t changed = 0;
    for (size_t i = off; i < n; i++) changed += out[i] == 0xC3;
    EXPECT_EQ(changed, n - off);
    EXPECT_EQ(xo_device_free(dev, p), XO_OK);
}

TEST_P(DeviceTest, IpcBadHandlesFailClearly)
{
    xo_device_ipc_handle_t junk;
    std::memset(&junk, 0x11, sizeof junk);
    void *p = nullptr;
    EXPECT_EQ(xo_device_ipc_import(dev, &junk, &p), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "not an IPC handle")) << xo_last_error();
    EXPECT_EQ(p, nullptr);

    // A real handle, relabelled as another backend's.
    void *a = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 4096, &a), XO_OK);
    xo_device_ipc_handle_t h;
    ASSERT_EQ(xo_device_ipc_export(dev, a, &h), XO_OK);
    xo__ipc_header_t hdr;
    std::memcpy(&hdr, h.bytes, sizeof hdr);
    std::memset(hdr.backend, 0, sizeof hdr.backend);
    std::strcpy(hdr.backend, is_host() ? "cuda" : "host");
    std::memcpy(h.bytes, &hdr, sizeof hdr);
    EXPECT_EQ(xo_device_ipc_import(dev, &h, &p), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), std::string("exported by backend \"") + hdr.backend + "\"")) << xo_last_error();
    EXPECT_EQ(xo_device_free(dev, a), XO_OK);
}

// ---- events shared between processes --------------------------------------------------------------------------

// The exporter's stream writes a buffer behind a closed gate and records a shareable event; another process queues
// a wait for that event and a copy of the buffer on its own stream, then says so; only then does the gate open. The
// copy must see the bytes written before the record: the other process's stream waited, without any host sync here.
TEST_P(DeviceTest, IpcEventMakesAnotherProcesssStreamWait)
{
    const size_t n = 1 << 20;
    void *p = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, n, &p), XO_OK);
    ASSERT_EQ(xo_device_memset(dev, p, 0x5A, n, nullptr), XO_OK);
    xo_device_stream_t *s = nullptr;
    xo_device_event_t *ev = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s), XO_OK);
    ASSERT_EQ(xo_device_event_create_ipc(dev, &ev), XO_OK) << xo_last_error();
    Gate gate;
    ASSERT_EQ(xo_device_launch_host(s, Gate::fn, &gate), XO_OK);
    ASSERT_EQ(xo_device_memset(dev, p, 0x77, n, s), XO_OK);
    ASSERT_EQ(xo_device_event_record(ev, s), XO_OK);
    xo_device_ipc_handle_t mh, eh;
    ASSERT_EQ(xo_device_ipc_export(dev, p, &mh), XO_OK);
    ASSERT_EQ(xo_device_ipc_export_event(ev, &eh), XO_OK) << xo_last_error();

    {
        Peer peer({"event", GetParam(), hex(mh), hex(eh), std::to_string(n), std::to_string(0x77)});
        EXPECT_EQ(peer.line(), "queued");
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        gate.open = true;
        EXPECT_EQ(peer.wait(), 0) << "see the peer's stderr above";
    }
    EXPECT_FALSE(gate.timed_out);
    EXPECT_EQ(xo_device_stream_synchronize(s), XO_OK);
    xo_device_event_destroy(ev);
    xo_device_stream_destroy(s);
    EXPECT_EQ(xo_device_free(dev, p), XO_OK);
}

// Importing an event this process exported shares it (CUDA would refuse to open the handle here); the shared object
// lives until the last of the two is destroyed. Wrong uses fail with a text.
TEST_P(DeviceTest, IpcEventsOfThisProcessAreSharedAndMisuseFails)
{
    xo_device_stream_t *s = nullptr;
    xo_device_event_t *ev = nullptr, *imp = nullptr, *plain = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s), XO_OK);
    ASSERT_EQ(xo_device_event_create_ipc(dev, &ev), XO_OK) << xo_last_error();
    xo_device_ipc_handle_t eh;
    ASSERT_EQ(xo_device_ipc_export_event(ev, &eh), XO_OK);
    ASSERT_EQ(xo_device_ipc_import_event(dev, &eh, &imp), XO_OK) << xo_last_error();
    Gate gate;
    ASSERT_EQ(xo_device_launch_host(s, Gate::fn, &gate), XO_OK);
    ASSERT_EQ(xo_device_event_record(ev, s), XO_OK);
    EXPECT_EQ(xo_device_event_query(imp), XO_EAGAIN);
    EXPECT_EQ(xo_device_event_record(imp, s), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "for waiting only")) << xo_last_error();
    xo_device_ipc_handle_t again;
    EXPECT_EQ(xo_device_ipc_export_event(imp, &again), XO_EINVAL);
    xo_device_event_destroy(ev); // the import still holds the shared event
    gate.open = true;
    EXPECT_EQ(xo_device_event_synchronize(imp), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_device_event_query(imp), XO_OK);
    xo_device_event_destroy(imp);

    ASSERT_EQ(xo_device_event_create(dev, &plain), XO_OK);
    EXPECT_EQ(xo_device_ipc_export_event(plain, &again), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "xo_device_event_create_ipc")) << xo_last_error();
    xo_device_event_destroy(plain);

    void *a = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 4096, &a), XO_OK);
    xo_device_ipc_handle_t mh;
    ASSERT_EQ(xo_device_ipc_export(dev, a, &mh), XO_OK);
    EXPECT_EQ(xo_device_ipc_import_event(dev, &mh, &imp), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "it is a memory handle")) << xo_last_error();
    xo_device_ipc_handle_t junk;
    std::memset(&junk, 0x11, sizeof junk);
    EXPECT_EQ(xo_device_ipc_import_event(dev, &junk, &imp), XO_EINVAL);
    EXPECT_EQ(xo_device_free(dev, a), XO_OK);
    xo_device_stream_destroy(s);
}

// host: an exporter that dies with its record pending does not leave importers waiting forever: synchronize fails
// naming the process, and a stream's queued wait lets the stream go on. (CUDA leaves this undefined.)
TEST_P(DeviceTest, IpcEventWaitsEndWhenTheExporterDies)
{
    if (!is_host()) GTEST_SKIP() << "CUDA leaves waits on an event of a dead process undefined";
    Peer peer({"hold-event", GetParam()});
    std::string hx = peer.line();
    ASSERT_EQ(hx.size(), 2 * sizeof(xo_device_ipc_handle_t)) << "the peer printed no handle";
    xo_device_ipc_handle_t eh;
    for (size_t i = 0; i < sizeof eh.bytes; i++) eh.bytes[i] = (unsigned char)std::stoul(hx.substr(2 * i, 2), 0, 16);
    xo_device_event_t *imp = nullptr;
    ASSERT_EQ(xo_device_ipc_import_event(dev, &eh, &imp), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_device_event_query(imp), XO_EAGAIN);
    xo_device_stream_t *s = nullptr;
    ASSERT_EQ(xo_device_stream_create(dev, &s), XO_OK);
    ASSERT_EQ(xo_device_stream_wait_event(s, imp), XO_OK);
    std::thread killer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        kill(peer.pid, SIGKILL);
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(xo_device_event_synchronize(imp), XO_EDEVICE);
    EXPECT_TRUE(has(xo_last_error(), "is gone")) << xo_last_error();
    EXPECT_EQ(xo_device_stream_synchronize(s), XO_OK);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    killer.join();
    peer.wait();
    xo_device_event_destroy(imp);
    xo_device_stream_destroy(s);
}

// host only: a process may import its own exports, imports of one buffer share a mapping with a count, and a handle
// whose device is gone is reported stale instead of mapping whatever now has that fd number.
// host: a mapping whose imports were all closed stays for the next import of the same memory (no new mmap), and is
// checked against the exporter first: once the exporter's device is closed, the handle is stale again.
TEST_P(DeviceTest, IdleImportMappingsAreReusedAndRevalidated)
{
    if (!is_host()) GTEST_SKIP() << "the idle-mapping cache is the host backend's";
    xo_device_t *other = nullptr;
    xo_device_config_t cfg{};
    cfg.capacity = 1 << 20;
    ASSERT_EQ(xo_device_open(be, 0, &cfg, &other), XO_OK);
    void *o = nullptr;
    ASSERT_EQ(xo_device_alloc(other, 4096, &o), XO_OK);
    ASSERT_EQ(xo_device_memset(other, o, 7, 4096, nullptr), XO_OK);
    xo_device_ipc_handle_t h;
    ASSERT_EQ(xo_device_ipc_export(other, o, &h), XO_OK);
    void *p1 = nullptr, *p2 = nullptr;
    ASSERT_EQ(xo_device_ipc_import(dev, &h, &p1), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_device_ipc_close(dev, p1), XO_OK);
    ASSERT_EQ(xo_device_ipc_import(dev, &h, &p2), XO_OK) << xo_last_error();
    EXPECT_EQ(p1, p2); // the idle mapping, not a new one
    unsigned char c = 0;
    ASSERT_EQ(xo_device_memcpy(dev, &c, p2, 1, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    EXPECT_EQ(c, 7);
    EXPECT_EQ(xo_device_ipc_close(dev, p2), XO_OK);
    EXPECT_EQ(xo_device_ipc_close(dev, p2), XO_EINVAL); // closed is closed, cached or not
    xo_device_close(other);
    void *x = nullptr;
    EXPECT_EQ(xo_device_ipc_import(dev, &h, &x), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "stale IPC handle")) << xo_last_error();
}

TEST_P(DeviceTest, IpcImportsAreCountedAndStaleHandlesRefused)
{
    if (!is_host()) GTEST_SKIP() << "CUDA does not import a handle in the process that exported it";
    void *a = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 8192, &a), XO_OK);
    ASSERT_EQ(xo_device_memset(dev, a, 9, 8192, nullptr), XO_OK);
    xo_device_ipc_handle_t h;
    ASSERT_EQ(xo_device_ipc_export(dev, a, &h), XO_OK);
    void *i1 = nullptr, *i2 = nullptr;
    ASSERT_EQ(xo_device_ipc_import(dev, &h, &i1), XO_OK) << xo_last_error();
    ASSERT_EQ(xo_device_ipc_import(dev, &h, &i2), XO_OK) << xo_last_error();
    EXPECT_EQ(i1, i2);
    EXPECT_NE(i1, a);  // a second mapping of the same memory
    ASSERT_EQ(xo_device_memset(dev, i1, 4, 100, nullptr), XO_OK);
    unsigned char c[2] = {};
    ASSERT_EQ(xo_device_memcpy(dev, c, static_cast<char *>(a) + 99, 2, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    EXPECT_EQ(c[0], 4);
    EXPECT_EQ(c[1], 9);
    EXPECT_EQ(xo_device_free(dev, i1), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "xo_device_ipc_close")) << xo_last_error();
    xo_device_ipc_handle_t h2;
    EXPECT_EQ(xo_device_ipc_export(dev, i1, &h2), XO_EINVAL);
    EXPECT_EQ(xo_device_ipc_close(dev, i1), XO_OK);
    EXPECT_EQ(xo_device_ipc_close(dev, i2), XO_OK);
    EXPECT_EQ(xo_device_ipc_close(dev, i2), XO_EINVAL);

    // The exporting device closes: its memfd goes, the handle is stale.
    xo_device_t *other = nullptr;
    xo_device_config_t cfg{};
    cfg.capacity = 1 << 20;
    ASSERT_EQ(xo_device_open(be, 0, &cfg, &other), XO_OK);
    void *o = nullptr;
    ASSERT_EQ(xo_device_alloc(other, 4096, &o), XO_OK);
    xo_device_ipc_handle_t stale;
    ASSERT_EQ(xo_device_ipc_export(other, o, &stale), XO_OK);
    xo_device_close(other);
    void *x = nullptr;
    EXPECT_EQ(xo_device_ipc_import(dev, &stale, &x), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "stale IPC handle")) << xo_last_error();
    // Reuse the fd number by another memfd-backed device: the inode check catches it.
    ASSERT_EQ(xo_device_open(be, 0, &cfg, &other), XO_OK);
    EXPECT_EQ(xo_device_ipc_import(dev, &stale, &x), XO_EINVAL);
    EXPECT_TRUE(has(xo_last_error(), "stale IPC handle")) << xo_last_error();
    xo_device_close(other);
    EXPECT_EQ(xo_device_free(dev, a), XO_OK);
}

// ---- kernels ---------------------------------------------------------------------------------------------------------

class KernelsTest : public DeviceTest {
  protected:
    void SetUp() override
    {
        DeviceTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        ASSERT_EQ(xo_module_load(XO_KERNELS_MODULE_PATH, nullptr), XO_OK) << xo_last_error();
        xo_pool_config_t cfg{};
        cfg.n_threads = 2;
        ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
        xo_status_t st = xo_create_actor_by_name("Kernels", xo_args("slu", GetParam().c_str(), (int64_t)0,
                                                                     (uint64_t)(256u << 20)),
                                                 xo_pool_address(pool), "kernels", &ref);
        ASSERT_EQ(st, XO_OK) << xo_last_error();
    }
    void TearDown() override
    {
        if (ref) xo_ref_free(ref);
        if (pool) xo_pool_stop(pool);
        DeviceTest::TearDown();
    }

    std::vector<float> call_floats(const char *method, xo_args_t *args)
    {
        xo_result_t *r = nullptr;
        xo_status_t st = xo_call(ref, method, args, 30000, &r);
        EXPECT_EQ(st, XO_OK) << method << ": " << xo_last_error();
        if (st != XO_OK) return {};
        xo_bytes_t b{};
        EXPECT_EQ(xo_result_unpack(r, "b", &b), XO_OK) << xo_last_error();
        std::vector<float> v(b.len / sizeof(float));
        if (b.len) std::memcpy(v.data(), b.ptr, b.len);
        xo_result_free(r);
        return v;
    }

    xo_pool_t *pool = nullptr;
    xo_ref_t *ref = nullptr;
};

std::vector<float> random_floats(size_t n, unsigned seed)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto &x : v) x = d(rng);
    return v;
}

TEST_P(KernelsTest, RunsOnTheNamedDevice)
{
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(ref, "device", nullptr, 5000, &r), XO_OK) << xo_last_error();
    xo_str_t name{};
    int64_t index = -1;
    uint64_t mem_free = 0, mem_total = 0;
    ASSERT_EQ(xo_result_unpack(r, "[sluu]", &name, &index, &mem_free, &mem_total), XO_OK) << xo_last_error();
    EXPECT_EQ(std::string(name.ptr, name.len), GetParam());
    EXPECT_EQ(index, 0);
    EXPECT_EQ(mem_total, 256u << 20);
    EXPECT_LE(mem_free, mem_total);
    xo_result_free(r);
}

TEST_P(KernelsTest, SaxpyMatchesTheCpu)
{
    const size_t n = 100003;  // not a multiple of any block size
    auto x = random_floats(n, 1), y = random_floats(n, 2);
    const float a = 2.5f;
    auto got = call_floats("saxpy", xo_args("dbb", (double)a, x.data(), n * sizeof(float), y.data(), n * sizeof(float)));
    ASSERT_EQ(got.size(), n);
    for (size_t i = 0; i < n; i++) ASSERT_NEAR(got[i], a * x[i] + y[i], 1e-5f) << i;
}

TEST_P(KernelsTest, SumReductionMatchesTheCpu)
{
    for (size_t n : {size_t(1), size_t(1000), size_t(1) << 20, (size_t(1) << 20) + 77}) {
        auto x = random_floats(n, 3 + (unsigned)n);
        double ref_sum = 0, abs_sum = 0;
        for (float v : x) {
            ref_sum += v;
            abs_sum += std::fabs(v);
        }
        xo_result_t *r = nullptr;
        ASSERT_EQ(xo_call(ref, "sum", xo_args("b", x.data(), n * sizeof(float)), 30000, &r), XO_OK) << xo_last_error();
        double got = 0;
        ASSERT_EQ(xo_result_unpack(r, "d", &got), XO_OK);
        xo_result_free(r);
        // Float accumulation in a different order than the CPU's: bounded by a few ulps of the sum of magnitudes.
        EXPECT_NEAR(got, ref_sum, 4e-6 * abs_sum + 1e-6) << "n = " << n;
    }
}

TEST_P(KernelsTest, TiledMatmulMatchesTheCpu)
{
    struct Shape {
        int m, k, n;
    };
    for (Shape s : {Shape{1, 1, 1}, Shape{67, 45, 33}, Shape{128, 128, 128}, Shape{16, 300, 5}}) {
        auto a = random_floats((size_t)s.m * s.k, 10), b = random_floats((size_t)s.k * s.n, 11);
        auto got = call_floats("matmul", xo_args("iiibb", s.m, s.k, s.n, a.data(), a.size() * sizeof(float), b.data(),
                                                 b.size() * sizeof(float)));
        ASSERT_EQ(got.size(), (size_t)s.m * s.n) << s.m << "x" << s.k << "x" << s.n;
        for (int i = 0; i < s.m; i++)
            for (int j = 0; j < s.n; j++) {
                double c = 0;
                for (int kk = 0; kk < s.k; kk++) c += (double)a[(size_t)i * s.k + kk] * b[(size_t)kk * s.n + j];
                ASSERT_NEAR(got[(size_t)i * s.n + j], c, 1e-4 * s.k) << i << "," << j;
            }
    }
}

TEST_P(KernelsTest, BadArgumentsAreRefusedWithText)
{
    float a[4] = {};
    xo_status_t st = xo_call(ref, "matmul", xo_args("iiibb", 2, 2, 2, a, sizeof a, a, sizeof a - 4), 5000, nullptr);
    EXPECT_EQ(st, XO_EBADARGS);
    EXPECT_TRUE(has(xo_last_error(), "b is 12 bytes (want 16)")) << xo_last_error();
    st = xo_call(ref, "saxpy", xo_args("dbb", 1.0, a, sizeof a, a, sizeof a - 4), 5000, nullptr);
    EXPECT_EQ(st, XO_EBADARGS);
    // A failed call leaks no device memory: the actor's device is back at its start.
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(ref, "device", nullptr, 5000, &r), XO_OK);
    xo_str_t name{};
    int64_t index = -1;
    uint64_t mem_free = 0, mem_total = 0;
    ASSERT_EQ(xo_result_unpack(r, "[sluu]", &name, &index, &mem_free, &mem_total), XO_OK);
    if (is_host()) { EXPECT_EQ(mem_free, mem_total); }
    xo_result_free(r);
}

std::string param_name(const ::testing::TestParamInfo<std::string> &info) { return info.param; }

}  // namespace

INSTANTIATE_TEST_SUITE_P(Backends, DeviceTest, ::testing::Values("host", "cuda"), param_name);
INSTANTIATE_TEST_SUITE_P(Backends, KernelsTest, ::testing::Values("host", "cuda"), param_name);
