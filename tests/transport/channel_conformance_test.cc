// One conformance suite for every channel backend (unix path, unix abstract, tcp over IPv4 and IPv6, shm, and ucx
// where the library was built with UCX): each TEST_P runs once per backend, as UCX's UCT_INSTANTIATE_TEST_CASE and nng's transport tests do.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "transport/channel.h"
#include "tests/transport/pingpong.h"
#include "transport/shm.h"
#include "transport/sock.h"
#include "xoscar/status.h"

namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t0)
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

std::string Unique(const char *what)
{
    static std::atomic<int> n{0};
    return std::string("xo-test-") + what + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

bool HaveIPv6Loopback()
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    close(fd);
    return ok;
}

struct Backend {
    const char *name;
    std::string (*url)(); // a fresh address to listen on
    bool stream;          // raw bytes on the socket are frames (unix, tcp); shm's socket carries the handshake
};

const Backend kBackends[] = {
    {"unix_path", [] { return "unix:///tmp/" + Unique("u") + ".sock"; }, true},
    {"unix_abstract", [] { return "unix://@" + Unique("ua"); }, true},
    {"tcp4", [] { return std::string("tcp://127.0.0.1:0"); }, true},
    {"tcp6", [] { return std::string("tcp://[::1]:0"); }, true},
    {"shm", [] { return "shm://" + Unique("s"); }, false},
    // Listed in every build; skipped at run time when the build made no ucx plugin (see SetUp).
    {"ucx", [] { return std::string("ucx://127.0.0.1:0"); }, false},
};

bool IsUcx(const Backend &b) { return strcmp(b.name, "ucx") == 0; }

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XO_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(XO_TEST_TSAN)
// Under TSan, libucm's madvise hook (installed by ucp_init) crashes in TSan's rwlock interceptor when UCX's async
// thread exits: a fault inside libucm, not in our code. The tcp transport needs no memory hooks, so the suite turns
// them off with UCX_MEM_MMAP_HOOK_MODE=none (unless the caller set it). libucs reads UCX_MEM_* in its library
// constructor, before any code of ours runs, so the binary sets the variable and re-executes itself.
const bool kUcxNoMemHooks = [] {
    if (getenv("UCX_MEM_MMAP_HOOK_MODE")) return true;
    setenv("UCX_MEM_MMAP_HOOK_MODE", "none", 1);
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    std::vector<char *> args;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) args.push_back(buf + i);
    args.push_back(nullptr);
    execv("/proc/self/exe", args.data());
    return false; // exec failed: run as is, the ucx cases may crash in libucm
}();
#endif

// ctest and gtest name the instance by its backend rather than by its bytes.
void PrintTo(const Backend &b, std::ostream *os) { *os << b.name; }

// A frame the test owns, for sending and for comparing.
struct TestFrame {
    std::vector<uint8_t> header;
    std::vector<std::vector<uint8_t>> segs;
    std::vector<xo_seg_t> segv;
    xo_frame_t f{};

    const xo_frame_t *get()
    {
        segv.clear();
        for (auto &s : segs) segv.push_back({s.data(), s.size()});
        f = xo_frame_t{};
        f.header = header.data();
        f.header_len = header.size();
        f.segs = segv.data();
        f.nsegs = segv.size();
        return &f;
    }
};

uint8_t PatternByte(uint64_t seed, size_t i) { return static_cast<uint8_t>((seed * 0x9E3779B97F4A7C15ull + i * 2654435761u) >> 29); }

std::vector<uint8_t> Pattern(uint64_t seed, size_t n)
{
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = PatternByte(seed, i);
    return v;
}

TestFrame MakeFrame(uint64_t seed, size_t header_len, std::vector<size_t> seg_lens)
{
    TestFrame t;
    t.header = Pattern(seed, header_len);
    for (size_t k = 0; k < seg_lens.size(); k++) t.segs.push_back(Pattern(seed * 31 + k + 1, seg_lens[k]));
    return t;
}

// A received frame, released on scope exit.
struct RxFrame {
    xo_frame_t f{};
    ~RxFrame() { xo__frame_release(&f); }
};

::testing::AssertionResult SameFrame(const TestFrame &want, const xo_frame_t &got)
{
    if (got.header_len != want.header.size())
        return ::testing::AssertionFailure() << "header " << got.header_len << " bytes, want " << want.header.size();
    if (got.header_len && memcmp(got.header, want.header.data(), got.header_len) != 0)
        return ::testing::AssertionFailure() << "header bytes differ";
    if (got.nsegs != want.segs.size())
        return ::testing::AssertionFailure() << got.nsegs << " segments, want " << want.segs.size();
    for (size_t i = 0; i < got.nsegs; i++) {
        if (got.segs[i].len != want.segs[i].size())
            return ::testing::AssertionFailure() << "segment " << i << ": " << got.segs[i].len << " bytes, want "
                                                 << want.segs[i].size();
        if (got.segs[i].len && memcmp(got.segs[i].data, want.segs[i].data(), got.segs[i].len) != 0)
            return ::testing::AssertionFailure() << "segment " << i << " bytes differ";
        if (reinterpret_cast<uintptr_t>(got.segs[i].data) % 64 != 0)
            return ::testing::AssertionFailure() << "segment " << i << " not 64-byte aligned";
    }
    return ::testing::AssertionSuccess();
}

uint64_t Checksum(const void *p, size_t n)
{
    const uint8_t *b = static_cast<const uint8_t *>(p);
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int CountDir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

struct ChanCloser {
    void operator()(xo_channel_t *c) const { xo__channel_close(c); }
};
using Chan = std::unique_ptr<xo_channel_t, ChanCloser>;

class ChannelConformance : public ::testing::TestWithParam<Backend> {
protected:
    xo_listener_t *lis_ = nullptr;
    std::string url_;

    void SetUp() override
    {
        if (std::string(GetParam().name) == "tcp6" && !HaveIPv6Loopback()) GTEST_SKIP() << "no IPv6 loopback";
        if (IsUcx(GetParam()) && !xo__transport_find("ucx")) {
#ifdef XO_TEST_UCX_PLUGIN
            // The build found UCX: its plugin not loading is a failure, not a reason to skip.
            FAIL() << "the ucx plugin did not load: " << (xo__plugin_why("ucx") ? xo__plugin_why("ucx") : "?");
#else
            GTEST_SKIP() << "this build found no UCX (no ucx plugin)";
#endif
        }
    }

    void TearDown() override { xo__listener_close(lis_); }

    void Listen(const xo_chan_opts_t *opts = nullptr)
    {
        std::string u = GetParam().url();
        ASSERT_EQ(XO_OK, xo__listen(u.c_str(), opts, &lis_)) << u << ": " << xo_last_error();
        url_ = xo__listener_url(lis_);
    }

    // Connects a client and accepts it (accept runs on a thread: shm's connect waits for the accept's reply).
    void Pair(Chan *client, Chan *server, const xo_chan_opts_t *copts = nullptr)
    {
        xo_channel_t *s = nullptr, *c = nullptr;
        xo_status_t ast = XO_EINVAL;
        std::string aerr;
        std::thread t([&] {
            ast = xo__listener_accept(lis_, 5000, &s);
            aerr = xo_last_error();
        });
        xo_status_t cst = xo__connect(url_.c_str(), copts, 5000, &c);
        std::string cerr = xo_last_error();
        t.join();
        ASSERT_EQ(XO_OK, cst) << url_ << ": " << cerr;
        ASSERT_EQ(XO_OK, ast) << aerr;
        client->reset(c);
        server->reset(s);
    }

    // A raw socket connected to the listener, for writing bytes no channel would send.
    int RawConnect()
    {
        xo_url_t u;
        EXPECT_EQ(XO_OK, xo__url_parse(url_.c_str(), &u));
        xo_sockaddr_t a;
        int type = SOCK_STREAM;
        if (strcmp(u.scheme, "unix") == 0) {
            EXPECT_EQ(XO_OK, xo__sockaddr_unix(u.rest, &a));
        } else if (strcmp(u.scheme, "tcp") == 0) {
            EXPECT_EQ(XO_OK, xo__sockaddr_tcp(u.rest, &a));
        } else {
            EXPECT_EQ(XO_OK, xo__shm_sockaddr(u.rest, &a));
            type = SOCK_SEQPACKET;
        }
        int fd = -1;
        EXPECT_EQ(XO_OK, xo__sock_connect(&a, type, 2000, &fd)) << xo_last_error();
        return fd;
    }

    static void Exchange(xo_channel_t *from, xo_channel_t *to, TestFrame &tf)
    {
        xo_status_t sst = XO_OK;
        std::string serr;
        // A large frame fills the socket buffer before it is read: send from a thread.
        std::thread t([&] {
            sst = xo__channel_send(from, tf.get());
            serr = xo_last_error();
        });
        RxFrame rx;
        xo_status_t rst = xo__channel_recv(to, 10000, &rx.f);
        std::string rerr = xo_last_error();
        t.join();
        ASSERT_EQ(XO_OK, sst) << serr;
        ASSERT_EQ(XO_OK, rst) << rerr;
        EXPECT_TRUE(SameFrame(tf, rx.f));
    }
};

TEST_P(ChannelConformance, ConnectRefusedFast)
{
    Listen();
    std::string url = url_; // a real address of this backend, with nobody behind it once closed
    xo__listener_close(lis_);
    lis_ = nullptr;
    xo_channel_t *c = nullptr;
    auto t0 = Clock::now();
    EXPECT_EQ(XO_EREFUSED, xo__connect(url.c_str(), nullptr, 5000, &c)) << xo_last_error();
    EXPECT_LT(MsSince(t0), 1000);
    EXPECT_EQ(nullptr, c);
}

TEST_P(ChannelConformance, BadUrls)
{
    xo_channel_t *c = nullptr;
    xo_listener_t *l = nullptr;
    EXPECT_EQ(XO_EINVAL, xo__connect("nourl", nullptr, 100, &c));
    EXPECT_EQ(XO_EINVAL, xo__connect("bogus://x", nullptr, 100, &c));
    EXPECT_NE(std::string(xo_last_error()).find("bogus"), std::string::npos) << xo_last_error();
    EXPECT_EQ(XO_EINVAL, xo__listen("tcp://127.0.0.1", nullptr, &l));
    EXPECT_EQ(XO_EINVAL, xo__listen("tcp://127.0.0.1:99999", nullptr, &l));
    EXPECT_EQ(XO_EINVAL, xo__listen("shm://a/b", nullptr, &l));
    EXPECT_EQ(XO_EINVAL, xo__listen("unix://", nullptr, &l));
    EXPECT_EQ(nullptr, c);
    EXPECT_EQ(nullptr, l);
}

TEST_P(ChannelConformance, ListenerReportsUsableUrl)
{
    Listen();
    std::string want = GetParam().url();
    EXPECT_EQ(want.substr(0, want.find("://")), url_.substr(0, url_.find("://"))) << url_;
    if (url_.rfind("tcp://", 0) == 0) {
        EXPECT_NE(":0", url_.substr(url_.size() - 2)) << url_; // the ephemeral port, resolved
    }
    Chan c, s;
    Pair(&c, &s);
    EXPECT_STREQ(xo__channel_scheme(c.get()), xo__channel_scheme(s.get()));
}

TEST_P(ChannelConformance, AcceptTimesOut)
{
    Listen();
    xo_channel_t *s = nullptr;
    auto t0 = Clock::now();
    EXPECT_EQ(XO_ETIMEDOUT, xo__listener_accept(lis_, 50, &s));
    EXPECT_GE(MsSince(t0), 40);
    EXPECT_EQ(nullptr, s);
}

TEST_P(ChannelConformance, ExchangeBothWays)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    const size_t sizes[] = {0, 1, 7, 100, 4096, 65535, 65536, 65537, 300000, 1 << 20, 3 << 20};
    uint64_t seed = 1;
    for (size_t n : sizes) {
        for (int dir = 0; dir < 2; dir++) {
            TestFrame tf = MakeFrame(seed++, 1 + n % 300, {n, n / 3});
            xo_channel_t *from = dir ? s.get() : c.get(), *to = dir ? c.get() : s.get();
            ASSERT_NO_FATAL_FAILURE(Exchange(from, to, tf)) << "size " << n << " dir " << dir;
        }
    }
    // Many small frames in flight at once, in both directions, arrive in order.
    std::vector<TestFrame> frames;
    for (int i = 0; i < 200; i++) frames.push_back(MakeFrame(1000 + i, 16, {static_cast<size_t>(i * 7)}));
    std::vector<TestFrame> frames2 = frames; // each sender builds its own iovecs
    std::atomic<int> send_failures{0};
    std::thread tc([&] {
        for (auto &f : frames)
            if (xo__channel_send(c.get(), f.get()) != XO_OK) send_failures++;
    });
    std::thread ts([&] {
        for (auto &f : frames2)
            if (xo__channel_send(s.get(), f.get()) != XO_OK) send_failures++;
    });
    for (auto &f : frames) {
        RxFrame a, b;
        ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 5000, &a.f)) << xo_last_error();
        ASSERT_EQ(XO_OK, xo__channel_recv(c.get(), 5000, &b.f)) << xo_last_error();
        EXPECT_TRUE(SameFrame(f, a.f));
        EXPECT_TRUE(SameFrame(f, b.f));
    }
    tc.join();
    ts.join();
    EXPECT_EQ(0, send_failures.load());
}

TEST_P(ChannelConformance, EmptyHeaderAndEmptyFrame)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    TestFrame empty;
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), empty));
    TestFrame no_header = MakeFrame(5, 0, {10, 0, XO_SHM_OOB_MIN});
    ASSERT_NO_FATAL_FAILURE(Exchange(s.get(), c.get(), no_header));
    TestFrame empty_segs = MakeFrame(6, 12, {0, 0, 0});
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), empty_segs));
}

TEST_P(ChannelConformance, ManySegments)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    std::vector<size_t> lens;
    for (size_t i = 0; i < XO_FRAME_MAX_SEGS; i++) lens.push_back(i % 5 == 0 ? 0 : (i * 37) % 3000);
    lens[500] = XO_SHM_OOB_MIN + 1; // one out-of-band part among many inline ones (shm)
    TestFrame tf = MakeFrame(7, 64, lens);
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), tf));
    // Enough medium segments that the inline record would hog the ring: shm moves them all out of band.
    std::vector<size_t> medium(200, 60000);
    TestFrame tm = MakeFrame(8, 64, medium);
    ASSERT_NO_FATAL_FAILURE(Exchange(s.get(), c.get(), tm));

    TestFrame too_many = MakeFrame(9, 4, std::vector<size_t>(XO_FRAME_MAX_SEGS + 1, 1));
    EXPECT_EQ(XO_EINVAL, xo__channel_send(c.get(), too_many.get()));
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), tf)); // still usable
}

TEST_P(ChannelConformance, HugeMessage)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    const size_t n = 64u << 20;
    std::vector<uint64_t> big(n / 8);
    uint64_t x = 88172645463325252ull;
    for (auto &w : big) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w = x;
    }
    uint64_t sum = Checksum(big.data(), n);
    std::string hdr = "huge";
    xo_seg_t seg = {big.data(), n};
    xo_frame_t f{};
    f.header = hdr.data();
    f.header_len = hdr.size();
    f.segs = &seg;
    f.nsegs = 1;
    xo_status_t sst = XO_OK;
    std::thread t([&] { sst = xo__channel_send(c.get(), &f); });
    RxFrame rx;
    ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 30000, &rx.f)) << xo_last_error();
    t.join();
    ASSERT_EQ(XO_OK, sst);
    ASSERT_EQ(1u, rx.f.nsegs);
    ASSERT_EQ(n, rx.f.segs[0].len);
    EXPECT_EQ(sum, Checksum(rx.f.segs[0].data, n));
    EXPECT_EQ(hdr, std::string(static_cast<char *>(rx.f.header), rx.f.header_len));
}

// xo__channel_set_max_frame, as an acceptor uses it before the peer has authenticated: a frame within the lowered
// limit passes, the limit raised again takes large frames, and a frame over the lowered limit ends the channel
// (whatever the peer announced, nothing of that size is allocated: runtime_remote_stranger measures that).
// A segment made of pieces (xo_seg_t.pieces) arrives as one contiguous segment, on every backend (the ones without
// gather get it joined by the generic layer); pieces that do not add up to the segment are refused before sending.
TEST_P(ChannelConformance, GatheredSegmentsArriveJoined)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    TestFrame want = MakeFrame(70, 20, {(300 << 10) + 5, 100, 70000});
    auto &s0 = want.segs[0], &s2 = want.segs[2];
    xo_seg_t p0[3] = {{s0.data(), 1000}, {s0.data() + 1000, 0}, {s0.data() + 1000, s0.size() - 1000}};
    xo_seg_t p2[2] = {{s2.data(), 7}, {s2.data() + 7, s2.size() - 7}};
    xo_seg_t segs[3] = {{nullptr, s0.size()}, {want.segs[1].data(), 100}, {nullptr, s2.size()}};
    xo_seg_pieces_t gather[3] = {{p0, 3}, {nullptr, 0}, {p2, 2}};
    xo_frame_t f{};
    f.header = want.header.data();
    f.header_len = want.header.size();
    f.segs = segs;
    f.nsegs = 3;
    f.gather = gather;
    xo_status_t sst = XO_OK;
    std::thread t([&] { sst = xo__channel_send(c.get(), &f); });
    RxFrame rx;
    ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 10000, &rx.f)) << xo_last_error();
    t.join();
    ASSERT_EQ(XO_OK, sst);
    EXPECT_TRUE(SameFrame(want, rx.f));

    segs[2].len += 1; // the pieces no longer add up
    EXPECT_EQ(XO_EINVAL, xo__channel_send(c.get(), &f));
    segs[2].len -= 1;
    p2[1].data = nullptr; // a piece without bytes
    EXPECT_EQ(XO_EINVAL, xo__channel_send(c.get(), &f));
}

TEST_P(ChannelConformance, MaxFrameLoweredThenRaised)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    xo__channel_set_max_frame(s.get(), 256);
    TestFrame small = MakeFrame(40, 200, {56});
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), small)); // exactly 256 bytes
    xo__channel_set_max_frame(s.get(), 0);
    TestFrame big = MakeFrame(41, 100, {1 << 20});
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), big));

    Chan c2, s2;
    Pair(&c2, &s2);
    xo__channel_set_max_frame(s2.get(), 256);
    TestFrame over = MakeFrame(42, 257, {});
    std::thread t([&] { xo__channel_send(c2.get(), over.get()); }); // may fail once the server hangs up
    RxFrame rx;
    EXPECT_EQ(XO_EMSGSIZE, xo__channel_recv(s2.get(), 10000, &rx.f));
    EXPECT_EQ(XO_ECLOSED, xo__channel_recv(s2.get(), 1000, &rx.f));
    t.join();
}

TEST_P(ChannelConformance, OversizeFrameRejectedListenerKeepsServing)
{
    xo_chan_opts_t small{};
    small.max_frame = 1 << 20;
    Listen(&small);
    Chan c, s;
    Pair(&c, &s); // the client keeps the default, larger limit
    TestFrame ok = MakeFrame(10, 100, {(1 << 20) - 100});
    ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), ok)); // exactly max_frame passes

    TestFrame big = MakeFrame(11, 10, {2 << 20});
    std::thread t([&] { xo__channel_send(c.get(), big.get()); }); // may fail once the server hangs up
    RxFrame rx;
    EXPECT_EQ(XO_EMSGSIZE, xo__channel_recv(s.get(), 10000, &rx.f));
    EXPECT_NE(std::string(xo_last_error()).find("max_frame"), std::string::npos) << xo_last_error();
    EXPECT_EQ(XO_ECLOSED, xo__channel_recv(s.get(), 1000, &rx.f));
    t.join();
    auto t0 = Clock::now();
    EXPECT_EQ(XO_ECLOSED, xo__channel_recv(c.get(), 2000, &rx.f)); // the client learns at once
    EXPECT_LT(MsSince(t0), 1500);

    // The sender's own limit: refused locally, nothing sent, the channel lives on.
    Chan c2, s2;
    Pair(&c2, &s2, &small);
    EXPECT_EQ(XO_EMSGSIZE, xo__channel_send(c2.get(), big.get()));
    ASSERT_NO_FATAL_FAILURE(Exchange(c2.get(), s2.get(), ok));
    ASSERT_NO_FATAL_FAILURE(Exchange(s2.get(), c2.get(), ok));
}

TEST_P(ChannelConformance, GarbageClosesOnlyThatChannel)
{
    if (IsUcx(GetParam()))
        GTEST_SKIP() << "a ucx listener is UCX's sockaddr connection manager, not a stream of our frames: raw bytes "
                        "never reach the backend (malformed frames are checked in ucx.c's AM callback)";
    Listen();
    Chan good_c, good_s;
    Pair(&good_c, &good_s);

    // Each kind of bad bytes, on its own connection.
    struct Bad {
        const char *what;
        std::vector<uint8_t> bytes;
        xo_status_t want;
    };
    std::vector<Bad> bads;
    bads.push_back({"garbage", Pattern(99, 64), XO_EPROTO});
    if (GetParam().stream) {
        auto prefix = [](uint32_t hl, uint32_t ns, uint32_t flags) {
            std::vector<uint8_t> v(16);
            uint32_t w[4] = {0x31464f58u, hl, ns, flags};
            memcpy(v.data(), w, 16);
            return v;
        };
        bads.push_back({"huge header", prefix(0xffffffffu, 0, 0), XO_EMSGSIZE});
        bads.push_back({"too many segments", prefix(4, 0xffffffffu, 0), XO_EPROTO});
        bads.push_back({"bad flags", prefix(4, 0, 7), XO_EPROTO});
        auto huge_seg = prefix(0, 1, 0);
        uint64_t len = 1ull << 62;
        huge_seg.insert(huge_seg.end(), reinterpret_cast<uint8_t *>(&len), reinterpret_cast<uint8_t *>(&len) + 8);
        bads.push_back({"huge segment", huge_seg, XO_EMSGSIZE});
    }
    for (auto &bad : bads) {
        int raw = RawConnect();
        ASSERT_GE(raw, 0);
        ASSERT_EQ((ssize_t)bad.bytes.size(), send(raw, bad.bytes.data(), bad.bytes.size(), MSG_NOSIGNAL));
        xo_channel_t *s = nullptr;
        xo_status_t st = xo__listener_accept(lis_, 5000, &s);
        if (GetParam().stream) {
            ASSERT_EQ(XO_OK, st) << xo_last_error();
            RxFrame rx;
            EXPECT_EQ(bad.want, xo__channel_recv(s, 5000, &rx.f)) << bad.what;
            EXPECT_EQ(XO_ECLOSED, xo__channel_recv(s, 100, &rx.f)) << bad.what;
            // The server hung up on the raw peer.
            char b;
            pollfd p = {raw, POLLIN, 0};
            EXPECT_EQ(1, poll(&p, 1, 2000));
            EXPECT_LE(recv(raw, &b, 1, MSG_DONTWAIT), 0);
            xo__channel_close(s);
        } else {
            EXPECT_EQ(XO_EPROTO, st) << bad.what << ": " << xo_last_error(); // the handshake is refused
            EXPECT_EQ(nullptr, s);
        }
        close(raw);
    }
    // The other channel and the listener carry on.
    TestFrame tf = MakeFrame(12, 30, {100, XO_SHM_OOB_MIN});
    ASSERT_NO_FATAL_FAILURE(Exchange(good_c.get(), good_s.get(), tf));
    ASSERT_NO_FATAL_FAILURE(Exchange(good_s.get(), good_c.get(), tf));
    Chan c2, s2;
    Pair(&c2, &s2);
    ASSERT_NO_FATAL_FAILURE(Exchange(c2.get(), s2.get(), tf));
}

TEST_P(ChannelConformance, ConcurrentSendersNeverInterleave)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    const int kThreads = 8, kFrames = 1000;
    auto seg_len = [](int tid, int seq) -> size_t {
        if (seq % 97 == 0) return XO_SHM_OOB_MIN + tid; // out of band on shm
        return static_cast<size_t>((tid * 131 + seq * 17) % 2000);
    };
    std::vector<std::thread> senders;
    std::atomic<int> failures{0};
    for (int tid = 0; tid < kThreads; tid++) {
        senders.emplace_back([&, tid] {
            for (int seq = 0; seq < kFrames; seq++) {
                uint32_t hdr[2] = {static_cast<uint32_t>(tid), static_cast<uint32_t>(seq)};
                std::vector<uint8_t> a = Pattern(tid * 100000 + seq, seg_len(tid, seq));
                std::vector<uint8_t> b = Pattern(~(uint64_t)(tid * 100000 + seq), seq % 3);
                xo_seg_t segs[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
                xo_frame_t f{};
                f.header = hdr;
                f.header_len = sizeof hdr;
                f.segs = segs;
                f.nsegs = 2;
                if (xo__channel_send(c.get(), &f) != XO_OK) failures++;
            }
        });
    }
    std::vector<int> next(kThreads, 0);
    int bad = 0;
    for (int i = 0; i < kThreads * kFrames; i++) {
        RxFrame rx;
        ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 10000, &rx.f)) << "frame " << i << ": " << xo_last_error();
        ASSERT_EQ(8u, rx.f.header_len);
        uint32_t hdr[2];
        memcpy(hdr, rx.f.header, 8);
        int tid = static_cast<int>(hdr[0]), seq = static_cast<int>(hdr[1]);
        ASSERT_LT(tid, kThreads);
        ASSERT_EQ(next[tid], seq) << "thread " << tid << " out of order";
        next[tid]++;
        ASSERT_EQ(2u, rx.f.nsegs);
        std::vector<uint8_t> a = Pattern(tid * 100000 + seq, seg_len(tid, seq));
        std::vector<uint8_t> b = Pattern(~(uint64_t)(tid * 100000 + seq), seq % 3);
        if (rx.f.segs[0].len != a.size() || (a.size() && memcmp(rx.f.segs[0].data, a.data(), a.size()) != 0)) bad++;
        if (rx.f.segs[1].len != b.size() || (b.size() && memcmp(rx.f.segs[1].data, b.data(), b.size()) != 0)) bad++;
    }
    for (auto &t : senders) t.join();
    EXPECT_EQ(0, failures.load());
    EXPECT_EQ(0, bad);
    RxFrame extra;
    EXPECT_EQ(XO_ETIMEDOUT, xo__channel_recv(s.get(), 0, &extra.f));
}

// Fills the channel from a thread while nobody reads, then ends it with `end`; the sender must get an error.
static void SendUntilError(xo_channel_t *c, std::atomic<xo_status_t> *result, std::atomic<int> *sent)
{
    std::vector<uint8_t> payload(32 << 10, 0xab); // inline on shm: fills the ring, not the socket
    xo_seg_t seg = {payload.data(), payload.size()};
    xo_frame_t f{};
    f.segs = &seg;
    f.nsegs = 1;
    for (;;) {
        xo_status_t st = xo__channel_send(c, &f);
        if (st != XO_OK) {
            result->store(st);
            return;
        }
        (*sent)++;
    }
}

TEST_P(ChannelConformance, ShutdownWhileSendingWakesSender)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    std::atomic<xo_status_t> result{XO_OK};
    std::atomic<int> sent{0};
    std::thread t(SendUntilError, c.get(), &result, &sent);
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // long enough to block on a full pipe
    auto t0 = Clock::now();
    xo__channel_shutdown(c.get());
    t.join();
    EXPECT_LT(MsSince(t0), 1000);
    EXPECT_EQ(XO_ECLOSED, result.load());
    EXPECT_GT(sent.load(), 0);
    RxFrame rx;
    EXPECT_EQ(XO_ECLOSED, xo__channel_recv(c.get(), 1000, &rx.f));
    xo__channel_shutdown(c.get()); // idempotent
    // The peer drains what was sent, then sees the end.
    xo_status_t st;
    int got = 0;
    while ((st = xo__channel_recv(s.get(), 2000, &rx.f)) == XO_OK) {
        xo__frame_release(&rx.f);
        got++;
    }
    EXPECT_EQ(XO_ECLOSED, st) << xo_last_error();
    EXPECT_LE(got, sent.load());
}

TEST_P(ChannelConformance, PeerCloseWhileSendingFailsSender)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    std::atomic<xo_status_t> result{XO_OK};
    std::atomic<int> sent{0};
    std::thread t(SendUntilError, c.get(), &result, &sent);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto t0 = Clock::now();
    s.reset(); // the peer closes its end
    t.join();
    EXPECT_LT(MsSince(t0), 1000);
    EXPECT_EQ(XO_ECLOSED, result.load());
}

TEST_P(ChannelConformance, ShutdownWakesBlockedReceiver)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    xo_status_t st = XO_OK;
    std::thread t([&] {
        RxFrame rx;
        st = xo__channel_recv(s.get(), -1, &rx.f);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto t0 = Clock::now();
    xo__channel_shutdown(s.get());
    t.join();
    EXPECT_LT(MsSince(t0), 1000);
    EXPECT_EQ(XO_ECLOSED, st);
}

TEST_P(ChannelConformance, PeerDeathEndsRecvWithinOneSecond)
{
    // The child is forked before the parent listens and reads the address from a pipe: UCX is not fork-safe, so
    // a child must not inherit open ucx objects (the other backends do not mind either way).
    int pfd[2];
    ASSERT_EQ(0, pipe(pfd));
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child: connect, say hello, wait for the reply, send a second frame, then wait to be killed.
        close(pfd[1]);
        char buf[XO_URL_MAX] = {0};
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf - 1 && (n = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)n;
        std::string url(buf);
        xo_channel_t *c = nullptr;
        if (xo__connect(url.c_str(), nullptr, 5000, &c) != XO_OK) _exit(2);
        char hello[] = "hello";
        xo_frame_t f{};
        f.header = hello;
        f.header_len = 5;
        if (xo__channel_send(c, &f) != XO_OK) _exit(3);
        xo_frame_t r{};
        if (xo__channel_recv(c, 5000, &r) != XO_OK) _exit(4);
        xo__frame_release(&r);
        std::vector<uint8_t> big(XO_SHM_OOB_MIN, 7); // out of band on shm
        xo_seg_t seg = {big.data(), big.size()};
        f.segs = &seg;
        f.nsegs = 1;
        if (xo__channel_send(c, &f) != XO_OK) _exit(5);
        for (;;) pause();
    }
    close(pfd[0]);
    struct WriteEnd {
        int fd;
        ~WriteEnd() { close(fd); } // EOF ends the child's read, with or without an address
    } wend{pfd[1]};
    Listen();
    ASSERT_EQ(static_cast<ssize_t>(url_.size()), write(pfd[1], url_.data(), url_.size()));
    close(pfd[1]);
    wend.fd = -1;
    xo_channel_t *raw = nullptr;
    ASSERT_EQ(XO_OK, xo__listener_accept(lis_, 5000, &raw)) << xo_last_error();
    Chan s(raw);
    RxFrame a;
    ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 5000, &a.f)) << xo_last_error();
    ASSERT_EQ(5u, a.f.header_len);
    TestFrame reply = MakeFrame(13, 10, {1000});
    ASSERT_EQ(XO_OK, xo__channel_send(s.get(), reply.get()));
    RxFrame b;
    ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 5000, &b.f)) << xo_last_error();
    ASSERT_EQ(1u, b.f.nsegs);
    EXPECT_EQ(XO_SHM_OOB_MIN, b.f.segs[0].len);

    // Mid-conversation: the parent waits for more when the child dies.
    std::thread killer([child] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        kill(child, SIGKILL);
    });
    auto t0 = Clock::now();
    RxFrame c;
    EXPECT_EQ(XO_ECLOSED, xo__channel_recv(s.get(), 10000, &c.f)) << xo_last_error();
    EXPECT_LT(MsSince(t0), 1100);
    killer.join();
    int status = 0;
    ASSERT_EQ(child, waitpid(child, &status, 0));
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child exit " << status;
    // Sending to the dead peer fails too, and soon (TCP may accept one write before the reset comes back).
    xo_status_t st = XO_OK;
    for (int i = 0; i < 100 && st == XO_OK; i++) {
        st = xo__channel_send(s.get(), reply.get());
        if (st == XO_OK) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(XO_ECLOSED, st);
}

TEST_P(ChannelConformance, RecvTimeout)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    RxFrame rx;
    auto t0 = Clock::now();
    EXPECT_EQ(XO_ETIMEDOUT, xo__channel_recv(s.get(), 0, &rx.f));
    EXPECT_LT(MsSince(t0), 50);
    t0 = Clock::now();
    EXPECT_EQ(XO_ETIMEDOUT, xo__channel_recv(s.get(), 150, &rx.f));
    int64_t ms = MsSince(t0);
    EXPECT_GE(ms, 140);
    EXPECT_LT(ms, 1000);
    EXPECT_EQ(nullptr, rx.f.mem);
    // A frame sent later is still received whole.
    TestFrame tf = MakeFrame(14, 20, {5000});
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        xo__channel_send(c.get(), tf.get());
    });
    ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 5000, &rx.f)) << xo_last_error();
    t.join();
    EXPECT_TRUE(SameFrame(tf, rx.f));
}

TEST_P(ChannelConformance, PollableFds)
{
    Listen();
    pollfd lp = {xo__listener_fd(lis_), POLLIN, 0};
    EXPECT_EQ(0, poll(&lp, 1, 0));
    Chan c, s;
    Pair(&c, &s);
    RxFrame rx;
    ASSERT_EQ(XO_ETIMEDOUT, xo__channel_recv(s.get(), 0, &rx.f));
    pollfd p = {xo__channel_fd(s.get()), POLLIN, 0};
    EXPECT_EQ(0, poll(&p, 1, 50));
    TestFrame tf = MakeFrame(15, 10, {10, XO_SHM_OOB_MIN});
    std::thread t([&] { xo__channel_send(c.get(), tf.get()); });
    EXPECT_EQ(1, poll(&p, 1, 5000));
    // Drain with recv(0) as an epoll loop would: the whole frame arrives, possibly over several wakeups.
    xo_status_t st;
    int64_t deadline_ms = 5000;
    auto t0 = Clock::now();
    while ((st = xo__channel_recv(s.get(), 0, &rx.f)) == XO_ETIMEDOUT && MsSince(t0) < deadline_ms) poll(&p, 1, 100);
    t.join();
    ASSERT_EQ(XO_OK, st) << xo_last_error();
    EXPECT_TRUE(SameFrame(tf, rx.f));
}

// Polling without arming (xo__channel_ready / xo__channel_recv_nowait, the path of spinning threads in the runtime):
// frames come through with the fd silent; once armed again the fd signals the next frame, and reading with
// XO_RECV_FD leaves it quiet. Backends without the ops say so.
TEST_P(ChannelConformance, PollWithoutArmingThenHandBackToTheFd)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    RxFrame rx;
    if (!xo__channel_has_poll(s.get())) {
        EXPECT_FALSE(xo__channel_ready(s.get()));
        EXPECT_EQ(XO_ENOTSUP, xo__channel_recv_nowait(s.get(), 0, &rx.f));
        return;
    }
    pollfd p = {xo__channel_fd(s.get()), POLLIN, 0};
    ASSERT_EQ(XO_ETIMEDOUT, xo__channel_recv_nowait(s.get(), XO_RECV_ARM | XO_RECV_FD, &rx.f)); // armed, as recv(0)
    ASSERT_EQ(XO_ETIMEDOUT, xo__channel_recv_nowait(s.get(), 0, &rx.f));                      // disarmed
    EXPECT_FALSE(xo__channel_ready(s.get()));
    for (uint64_t k = 0; k < 3; k++) {
        // The last one has an out-of-band part: its memfd travels on the socket even when nobody is woken.
        TestFrame tf = MakeFrame(40 + k, 16, k == 2 ? std::vector<size_t>{100, XO_SHM_OOB_MIN} : std::vector<size_t>{8});
        ASSERT_EQ(XO_OK, xo__channel_send(c.get(), tf.get())) << xo_last_error();
        EXPECT_TRUE(xo__channel_ready(s.get()));
        EXPECT_EQ(XO_EAGAIN, xo__channel_recv_nowait(s.get(), XO_RECV_NOFRAME, &rx.f)); // seen, left in place
        if (k < 2) {
            EXPECT_EQ(0, poll(&p, 1, 0)) << "a frame rang the doorbell while nobody was armed";
        }
        RxFrame got;
        ASSERT_EQ(XO_OK, xo__channel_recv_nowait(s.get(), 0, &got.f)) << xo_last_error();
        EXPECT_TRUE(SameFrame(tf, got.f));
        EXPECT_FALSE(xo__channel_ready(s.get()));
    }
    // Hand back: arm (taking no frame), and the next frame wakes the fd; reading it with XO_RECV_FD leaves the fd
    // quiet again.
    ASSERT_EQ(XO_ETIMEDOUT, xo__channel_recv_nowait(s.get(), XO_RECV_ARM | XO_RECV_NOFRAME, &rx.f));
    EXPECT_EQ(0, poll(&p, 1, 0));
    TestFrame tf = MakeFrame(50, 16, {8});
    ASSERT_EQ(XO_OK, xo__channel_send(c.get(), tf.get()));
    EXPECT_EQ(1, poll(&p, 1, 5000));
    RxFrame got;
    ASSERT_EQ(XO_OK, xo__channel_recv_nowait(s.get(), XO_RECV_ARM | XO_RECV_FD, &got.f));
    EXPECT_TRUE(SameFrame(tf, got.f));
    ASSERT_EQ(XO_ETIMEDOUT, xo__channel_recv_nowait(s.get(), XO_RECV_ARM | XO_RECV_FD, &rx.f));
    EXPECT_EQ(0, poll(&p, 1, 0)) << "the doorbell was left on the socket";
    // The peer's death still ends a poller's receive.
    c.reset();
    auto t0 = Clock::now();
    xo_status_t st;
    while ((st = xo__channel_recv_nowait(s.get(), XO_RECV_FD, &rx.f)) == XO_ETIMEDOUT && MsSince(t0) < 2000)
        usleep(1000);
    EXPECT_EQ(XO_ECLOSED, st);
}

TEST_P(ChannelConformance, FramesOutliveTheirChannel)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    TestFrame tf = MakeFrame(16, 10, {10, XO_SHM_OOB_MIN}); // the mapping outlives the channel
    std::thread t([&] { xo__channel_send(c.get(), tf.get()); });
    RxFrame rx;
    ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 5000, &rx.f));
    t.join();
    s.reset();
    c.reset();
    EXPECT_TRUE(SameFrame(tf, rx.f));
    xo__frame_release(&rx.f);
    xo__frame_release(&rx.f); // twice is harmless
}

// Large frames of changing sizes, several held at once (as many as the warm block cache keeps waiting), some
// released while the next ones arrive and the last ones after the channel closed, from another thread: every one
// arrives byte-exact, in its own memory (the warm block cache, transport/warm_blocks.c, reuses memory only once a frame
// is released), and nothing is freed twice or leaked (ASan in CI).
TEST_P(ChannelConformance, LargeFramesReuseMemoryOnlyOnceReleased)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    const size_t MiB = 1u << 20;
    const std::vector<size_t> sizes = {MiB, 3 * MiB + 7, MiB + 1, 6 * MiB, 2 * MiB - 64, 5 * MiB, MiB, 4 * MiB + 3};
    std::vector<TestFrame> sent;
    for (size_t i = 0; i < sizes.size(); i++) sent.push_back(MakeFrame(100 + i, 24, {sizes[i] / 3, sizes[i] - sizes[i] / 3}));
    std::vector<std::unique_ptr<RxFrame>> held;
    for (size_t round = 0; round < 2; round++) {
        for (size_t i = 0; i < sent.size(); i++) {
            xo_status_t sst = XO_OK;
            std::thread t([&] { sst = xo__channel_send(c.get(), sent[i].get()); });
            auto rx = std::make_unique<RxFrame>();
            ASSERT_EQ(XO_OK, xo__channel_recv(s.get(), 10000, &rx->f)) << xo_last_error();
            t.join();
            ASSERT_EQ(XO_OK, sst);
            held.push_back(std::move(rx));
            // Release every other frame right away; keep the rest until the end.
            if (i % 2 == 1) {
                ASSERT_TRUE(SameFrame(sent[i], held.back()->f)) << "round " << round << " frame " << i;
                held.pop_back();
            }
        }
    }
    for (size_t k = 0; k < held.size(); k++)
        EXPECT_TRUE(SameFrame(sent[(2 * k) % sent.size()], held[k]->f)) << "held frame " << k;
    s.reset();
    c.reset();
    std::thread later([&] { held.clear(); }); // released after the channel closed, on another thread
    later.join();
}

TEST_P(ChannelConformance, NoFdLeakNothingInDevShm)
{
    int fds0 = CountDir("/proc/self/fd"), shm0 = CountDir("/dev/shm");
    for (int i = 0; i < 10; i++) {
        Listen();
        Chan c, s;
        Pair(&c, &s);
        TestFrame tf = MakeFrame(17 + i, 50, {100, 1 << 20, 70000});
        ASSERT_NO_FATAL_FAILURE(Exchange(c.get(), s.get(), tf));
        ASSERT_NO_FATAL_FAILURE(Exchange(s.get(), c.get(), tf));
        // One frame left unread (out of band on shm): its memory and its memfd must go with the channel. It may
        // not fit a socket buffer, so it is sent from a thread that the receiver's close releases.
        TestFrame unread = MakeFrame(40 + i, 50, {100, XO_SHM_OOB_MIN});
        std::atomic<bool> sent{false};
        std::thread t([&] {
            xo__channel_send(c.get(), unread.get());
            sent = true;
        });
        for (auto t0 = Clock::now(); !sent && MsSince(t0) < 500;) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        s.reset();
        t.join();
        c.reset();
        xo__listener_close(lis_);
        lis_ = nullptr;
    }
    EXPECT_EQ(fds0, CountDir("/proc/self/fd"));
    EXPECT_EQ(shm0, CountDir("/dev/shm"));
}

TEST_P(ChannelConformance, PingPongHelperMeasuresRoundTrips)
{
    Listen();
    Chan c, s;
    Pair(&c, &s);
    xo_status_t echo_st = XO_EINVAL;
    std::thread echo([&] { echo_st = xo__pingpong_echo(s.get()); });
    xo_pingpong_result_t r{};
    ASSERT_EQ(XO_OK, xo__pingpong_run(c.get(), 64, 100000, 10, 200, 5000, &r)) << xo_last_error();
    xo__channel_shutdown(c.get()); // the echo thread sees the channel close and returns
    echo.join();
    EXPECT_EQ(XO_OK, echo_st);
    EXPECT_EQ(200, r.iters);
    EXPECT_GT(r.min_us, 0);
    EXPECT_LE(r.min_us, r.p50_us);
    EXPECT_LE(r.p50_us, r.p99_us);
    EXPECT_GT(r.mbytes_per_s, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ChannelConformance, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<Backend> &i) { return std::string(i.param.name); });

TEST(TransportRegistry, EveryBackendIsRegisteredWithAllOps)
{
    for (const char *scheme : {"unix", "tcp", "shm"}) {
        const xo_transport_ops_t *t = xo__transport_find(scheme);
        ASSERT_NE(nullptr, t) << scheme;
        EXPECT_STREQ(scheme, t->scheme);
    }
    EXPECT_EQ(nullptr, xo__transport_find("inproc-nope"));
    size_t n = 0;
    xo__transport_list(&n);
    EXPECT_EQ(xo__transport_find("ucx") ? 4u : 3u, n);
}

TEST(TransportUrl, Parse)
{
    xo_url_t u;
    ASSERT_EQ(XO_OK, xo__url_parse("tcp://[::1]:80", &u));
    EXPECT_STREQ("tcp", u.scheme);
    EXPECT_STREQ("[::1]:80", u.rest);
    EXPECT_EQ(XO_EINVAL, xo__url_parse("://x", &u));
    EXPECT_EQ(XO_EINVAL, xo__url_parse("tcp://", &u));
    EXPECT_EQ(XO_EINVAL, xo__url_parse("averyveryverylongscheme://x", &u));
    EXPECT_EQ(XO_EINVAL, xo__url_parse(("unix:///" + std::string(300, 'a')).c_str(), &u));
}

TEST(UnixTransport, StaleSocketFileIsReplaced)
{
    std::string path = "/tmp/" + Unique("stale") + ".sock";
    // A socket file with nobody behind it, as a killed process leaves.
    xo_sockaddr_t a;
    ASSERT_EQ(XO_OK, xo__sockaddr_unix(path.c_str(), &a));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(0, bind(fd, reinterpret_cast<sockaddr *>(&a.ss), a.len));
    close(fd);
    ASSERT_EQ(0, access(path.c_str(), F_OK));
    xo_listener_t *l = nullptr;
    ASSERT_EQ(XO_OK, xo__listen(("unix://" + path).c_str(), nullptr, &l)) << xo_last_error();
    // A live one is not taken over.
    xo_listener_t *l2 = nullptr;
    EXPECT_EQ(XO_ESYS, xo__listen(("unix://" + path).c_str(), nullptr, &l2));
    EXPECT_EQ(nullptr, l2);
    xo__listener_close(l);
    EXPECT_NE(0, access(path.c_str(), F_OK)); // removed on close
}

} // namespace
