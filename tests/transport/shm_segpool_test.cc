// The shm backend's pool of reusable out-of-band segments (transport/shm_segpool.c): the pool's own rules, a peer's
// bad segments, and through real shm channels that large frames reuse a few segments, that a receiver holding many
// frames makes the sender fall back without losing any, and that a peer dying with segments outstanding leaks nothing.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "transport/channel.h"
#include "transport/shm.h"
#include "transport/shm_segpool.h"
#include "xoscar/status.h"

namespace {

int CountFds()
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

// The mappings of this process whose backing file name contains what ("xo-shm-seg").
int CountMappings(const char *what)
{
    std::ifstream maps("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(maps, line)) n += line.find(what) != std::string::npos;
    return n;
}

// The inode and name of the mapping that holds p ("" when none).
std::string MappingOf(const void *p, unsigned long *inode)
{
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        unsigned long lo, hi, off, ino;
        char perms[8], dev[16];
        int pos = 0;
        if (sscanf(line.c_str(), "%lx-%lx %7s %lx %15s %lu %n", &lo, &hi, perms, &off, dev, &ino, &pos) < 6) continue;
        if (a >= lo && a < hi) {
            *inode = ino;
            return line.substr(static_cast<size_t>(pos));
        }
    }
    *inode = 0;
    return "";
}

// A sealed memfd of len bytes, as a sender of ours makes one (seal = false: not sealed).
int Memfd(size_t len, bool seal = true)
{
    int fd = memfd_create("xo-test-seg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(0, ftruncate(fd, static_cast<off_t>(len)));
    if (seal) {
        EXPECT_EQ(0, fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    }
    return fd;
}

// ---- the pool itself ----

// A segment the peer has not freed is never handed out again; once it is freed the same slot comes back, already
// registered (no new fd), and a frame larger than it gets a new slot.
TEST(SegPool, ASegmentComesBackOnlyAfterThePeerFreedIt)
{
    xo_segpool_tx_t tx;
    xo__segpool_tx_init(&tx);
    xo_segpool_rx_t rx{};
    xo_seg_lease_t a{};
    ASSERT_EQ(XO_OK, xo__segpool_tx_take(&tx, 1 << 20, &a)) << xo_last_error();
    ASSERT_GE(a.reg_fd, 0);
    EXPECT_EQ(0u, reinterpret_cast<uintptr_t>(a.data) % 4096);
    EXPECT_GE(a.cap, 1u << 20);
    memset(a.data, 0x5a, 1 << 20);
    ASSERT_EQ(XO_OK, xo__segpool_rx_register(&rx, a.slot, dup(a.reg_fd), XO_FRAME_MAX_DEFAULT)) << xo_last_error();
    xo__segpool_tx_done(&tx, &a, true, true);

    xo_segpool_rseg_t *seg = nullptr;
    uint8_t *data = nullptr;
    ASSERT_EQ(XO_OK, xo__segpool_rx_take(&rx, a.slot, 1 << 20, &seg, &data)) << xo_last_error();
    EXPECT_EQ(0x5a, data[12345]); // the receiver sees the sender's bytes in its own mapping

    xo_seg_lease_t b{};
    ASSERT_EQ(XO_OK, xo__segpool_tx_take(&tx, 1 << 20, &b));
    EXPECT_NE(a.slot, b.slot) << "a segment still held by the receiver was handed out again";
    xo__segpool_tx_done(&tx, &b, false, false); // not sent: free at once, still unregistered

    xo__segpool_rx_release(seg);
    xo_seg_lease_t c{};
    ASSERT_EQ(XO_OK, xo__segpool_tx_take(&tx, 1000, &c));
    EXPECT_TRUE(c.slot == a.slot || c.slot == b.slot);
    if (c.slot == a.slot) {
        EXPECT_EQ(-1, c.reg_fd) << "a registered segment is registered again";
    }
    xo__segpool_tx_done(&tx, &c, c.reg_fd >= 0, false);

    xo_seg_lease_t big{};
    ASSERT_EQ(XO_OK, xo__segpool_tx_take(&tx, 5u << 20, &big));
    EXPECT_GE(big.cap, 5u << 20);
    EXPECT_GE(big.reg_fd, 0);
    xo__segpool_tx_done(&tx, &big, false, false);
    xo__segpool_rx_fini(&rx);
    xo__segpool_tx_fini(&tx);
}

// The pool stops growing at XO_SEGPOOL_BYTES and at its slot count: then it says XO_EAGAIN (the frame goes another
// way) rather than blocking or growing.
TEST(SegPool, ExhaustedPoolSaysAgainWithoutGrowing)
{
    xo_segpool_tx_t tx;
    xo__segpool_tx_init(&tx);
    std::vector<xo_seg_lease_t> held;
    xo_status_t st = XO_OK;
    while (st == XO_OK && held.size() < 2 * XO_SEGPOOL_SLOTS) {
        xo_seg_lease_t l{};
        st = xo__segpool_tx_take(&tx, 100 << 10, &l);
        if (st == XO_OK) held.push_back(l);
    }
    EXPECT_EQ(XO_EAGAIN, st);
    EXPECT_EQ(XO_SEGPOOL_SLOTS, held.size());
    for (auto &l : held) xo__segpool_tx_done(&tx, &l, false, true); // published: the (absent) peer holds them
    xo_seg_lease_t l{};
    EXPECT_EQ(XO_EAGAIN, xo__segpool_tx_take(&tx, 100 << 10, &l));
    EXPECT_EQ(XO_EAGAIN, xo__segpool_tx_take(&tx, XO_SEGPOOL_BYTES, &l)); // larger than the whole budget
    EXPECT_LE(tx.bytes, XO_SEGPOOL_BYTES);
    xo__segpool_tx_fini(&tx);
}

// What a peer could send that no sender of ours would: each is refused with its status, before anything is mapped,
// and the descriptor is closed either way.
TEST(SegPool, BadSegmentsFromAPeerAreRefused)
{
    int fds0 = CountFds();
    int maps0 = CountMappings("xo-test-seg");
    xo_segpool_rx_t rx{};
    size_t ok = XO_SEGPOOL_GRAIN;
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_register(&rx, XO_SEGPOOL_SLOTS, Memfd(ok), XO_FRAME_MAX_DEFAULT));
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_register(&rx, 0, Memfd(ok, false), XO_FRAME_MAX_DEFAULT))
        << "a segment the peer can still shrink would SIGBUS us";
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_register(&rx, 0, Memfd(ok + 4096), XO_FRAME_MAX_DEFAULT)); // not a grain
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_register(&rx, 0, Memfd(XO_SEGPOOL_HDR), XO_FRAME_MAX_DEFAULT));
    EXPECT_EQ(XO_EMSGSIZE, xo__segpool_rx_register(&rx, 0, Memfd(8 * ok), 1 << 20)); // beyond what max_frame needs
    EXPECT_EQ(XO_EMSGSIZE, xo__segpool_rx_register(&rx, 0, Memfd(ok), 256)) << "a stranger's channel maps nothing";
    EXPECT_EQ(0u, rx.bytes);
    EXPECT_EQ(maps0, CountMappings("xo-test-seg"));
    EXPECT_EQ(fds0, CountFds());

    xo_segpool_rseg_t *seg = nullptr;
    uint8_t *data = nullptr;
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_take(&rx, 3, 100, &seg, &data)); // never registered
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_take(&rx, 999, 100, &seg, &data));
    ASSERT_EQ(XO_OK, xo__segpool_rx_register(&rx, 3, Memfd(ok), XO_FRAME_MAX_DEFAULT)) << xo_last_error();
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_take(&rx, 3, ok, &seg, &data)); // more than its data (the header page)
    ASSERT_EQ(XO_OK, xo__segpool_rx_take(&rx, 3, ok - XO_SEGPOOL_HDR, &seg, &data)) << xo_last_error();
    xo_segpool_rseg_t *again = nullptr;
    EXPECT_EQ(XO_EPROTO, xo__segpool_rx_take(&rx, 3, 100, &again, &data)) << "reused before we released it";
    xo__segpool_rx_release(seg);
    ASSERT_EQ(XO_OK, xo__segpool_rx_take(&rx, 3, 100, &seg, &data));
    xo__segpool_rx_release(seg);
    xo__segpool_rx_fini(&rx);
    EXPECT_EQ(fds0, CountFds());
}

// A frame keeps its segment mapped when the slot is registered anew and when the pool goes away.
TEST(SegPool, AFrameOutlivesReRegistrationAndThePool)
{
    xo_segpool_rx_t rx{};
    int fd = Memfd(XO_SEGPOOL_GRAIN);
    uint8_t *w = static_cast<uint8_t *>(mmap(nullptr, XO_SEGPOOL_GRAIN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ASSERT_NE(MAP_FAILED, w);
    w[XO_SEGPOOL_HDR + 7] = 42;
    ASSERT_EQ(XO_OK, xo__segpool_rx_register(&rx, 0, fd, XO_FRAME_MAX_DEFAULT));
    xo_segpool_rseg_t *seg = nullptr;
    uint8_t *data = nullptr;
    ASSERT_EQ(XO_OK, xo__segpool_rx_take(&rx, 0, 100, &seg, &data));
    ASSERT_EQ(XO_OK, xo__segpool_rx_register(&rx, 0, Memfd(2 * XO_SEGPOOL_GRAIN), XO_FRAME_MAX_DEFAULT));
    xo__segpool_rx_fini(&rx);
    EXPECT_EQ(42, data[7]); // still mapped: ASan or a SIGSEGV would say otherwise
    xo__segpool_rx_release(seg);
    EXPECT_EQ(XO_SEG_FREE, reinterpret_cast<std::atomic<uint32_t> *>(w)->load()); // the sender may reuse it
    munmap(w, XO_SEGPOOL_GRAIN);
    EXPECT_EQ(0, CountMappings("xo-test-seg"));
}

// ---- through shm channels ----

std::string Url()
{
    static std::atomic<int> n{0};
    return "shm://xo-test-segpool-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

struct Pair {
    xo_listener_t *lis = nullptr;
    xo_channel_t *c = nullptr, *s = nullptr;
    explicit Pair(const std::string &url)
    {
        EXPECT_EQ(XO_OK, xo__listen(url.c_str(), nullptr, &lis)) << xo_last_error();
        std::thread t([&] { EXPECT_EQ(XO_OK, xo__listener_accept(lis, 5000, &s)) << xo_last_error(); });
        EXPECT_EQ(XO_OK, xo__connect(url.c_str(), nullptr, 5000, &c)) << xo_last_error();
        t.join();
    }
    ~Pair()
    {
        xo__channel_close(c);
        xo__channel_close(s);
        xo__listener_close(lis);
    }
};

uint8_t Byte(size_t i, int k) { return static_cast<uint8_t>(i * 31 + k * 7 + (i >> 12)); }

// Sends a frame whose one segment is len pattern bytes (k varies the pattern).
xo_status_t SendBig(xo_channel_t *ch, std::vector<uint8_t> &buf, size_t len, int k)
{
    buf.resize(len);
    for (size_t i = 0; i < len; i++) buf[i] = Byte(i, k);
    char hdr[16];
    snprintf(hdr, sizeof hdr, "big-%d", k);
    xo_seg_t seg = {buf.data(), len};
    xo_frame_t f{};
    f.header = hdr;
    f.header_len = strlen(hdr);
    f.segs = &seg;
    f.nsegs = 1;
    return xo__channel_send(ch, &f);
}

::testing::AssertionResult Holds(const xo_frame_t &f, size_t len, int k)
{
    if (f.nsegs != 1 || f.segs[0].len != len) return ::testing::AssertionFailure() << "wrong shape";
    const uint8_t *p = static_cast<const uint8_t *>(f.segs[0].data);
    for (size_t i = 0; i < len; i += 4093)
        if (p[i] != Byte(i, k)) return ::testing::AssertionFailure() << "byte " << i << " of frame " << k;
    if (p[len - 1] != Byte(len - 1, k)) return ::testing::AssertionFailure() << "last byte of frame " << k;
    return ::testing::AssertionSuccess();
}

// 200 frames of 1 MiB each way: the received frames point into a mapping of a pooled segment, and all of them
// into the same one or two (before the pool, every frame had a memfd of its own: 200 inodes), and neither fds nor
// mappings grow with the number of frames.
TEST(ShmSegPool, LargeFramesReuseAFewMappedSegments)
{
    Pair p(Url());
    ASSERT_TRUE(p.c && p.s);
    std::vector<uint8_t> buf;
    std::set<unsigned long> inodes;
    int fds_after_first = -1, maps_after_first = -1;
    for (int k = 0; k < 200; k++) {
        for (int dir = 0; dir < 2; dir++) {
            xo_channel_t *from = dir ? p.s : p.c, *to = dir ? p.c : p.s;
            ASSERT_EQ(XO_OK, SendBig(from, buf, 1 << 20, k)) << xo_last_error();
            xo_frame_t f{};
            ASSERT_EQ(XO_OK, xo__channel_recv(to, 5000, &f)) << xo_last_error();
            ASSERT_TRUE(Holds(f, 1 << 20, k));
            unsigned long ino = 0;
            std::string name = MappingOf(f.segs[0].data, &ino);
            EXPECT_NE(std::string::npos, name.find("xo-shm-seg")) << "frame " << k << " lies in '" << name << "'";
            inodes.insert(ino);
            xo__frame_release(&f);
        }
        if (k == 0) {
            fds_after_first = CountFds();
            maps_after_first = CountMappings("memfd:");
        }
    }
    EXPECT_LE(inodes.size(), 4u) << "segments were not reused";
    EXPECT_EQ(fds_after_first, CountFds());
    EXPECT_EQ(maps_after_first, CountMappings("memfd:"));
}

// A receiver that holds more large frames than the pool has segments: the sender falls back to one-shot memfds and
// every frame arrives intact; once they are released, frames use the pool again.
TEST(ShmSegPool, AReceiverHoldingManyFramesMakesTheSenderFallBackLosingNothing)
{
    Pair p(Url());
    ASSERT_TRUE(p.c && p.s);
    const int kHeld = XO_SEGPOOL_SLOTS + 8;
    const size_t kLen = 300 << 10; // >= XO_SHM_OOB_MIN: out of band either way
    std::vector<uint8_t> buf;
    std::vector<xo_frame_t> held(kHeld);
    int pooled = 0;
    for (int k = 0; k < kHeld; k++) {
        ASSERT_EQ(XO_OK, SendBig(p.c, buf, kLen, k)) << xo_last_error();
        ASSERT_EQ(XO_OK, xo__channel_recv(p.s, 5000, &held[k])) << xo_last_error();
        unsigned long ino;
        pooled += MappingOf(held[k].segs[0].data, &ino).find("xo-shm-seg") != std::string::npos;
    }
    EXPECT_EQ(static_cast<int>(XO_SEGPOOL_SLOTS), pooled);
    for (int k = 0; k < kHeld; k++) {
        EXPECT_TRUE(Holds(held[k], kLen, k));
        xo__frame_release(&held[k]);
    }
    ASSERT_EQ(XO_OK, SendBig(p.c, buf, kLen, 99));
    xo_frame_t f{};
    ASSERT_EQ(XO_OK, xo__channel_recv(p.s, 5000, &f));
    unsigned long ino;
    EXPECT_NE(std::string::npos, MappingOf(f.segs[0].data, &ino).find("xo-shm-seg"));
    EXPECT_TRUE(Holds(f, kLen, 99));
    xo__frame_release(&f);
}

// The peer (a child process) sends large frames and is killed while we hold them: they stay readable, the channel
// reports the death, and once the frames and the channel are gone no segment is left mapped and no fd open.
TEST(ShmSegPool, APeerDyingWithSegmentsOutstandingLeaksNothing)
{
    int fds0 = CountFds(), segs0 = CountMappings("xo-shm-seg");
    std::string url = Url();
    xo_listener_t *lis = nullptr;
    ASSERT_EQ(XO_OK, xo__listen(url.c_str(), nullptr, &lis)) << xo_last_error();
    const int kFrames = 4;
    const size_t kLen = 3 << 20;
    fflush(nullptr);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        xo_channel_t *c = nullptr;
        if (xo__connect(url.c_str(), nullptr, 5000, &c) != XO_OK) _exit(2);
        std::vector<uint8_t> buf;
        for (int k = 0; k < kFrames; k++)
            if (SendBig(c, buf, kLen, k) != XO_OK) _exit(3);
        for (;;) pause();
    }
    xo_channel_t *s = nullptr;
    ASSERT_EQ(XO_OK, xo__listener_accept(lis, 5000, &s)) << xo_last_error();
    std::vector<xo_frame_t> held(kFrames);
    for (int k = 0; k < kFrames; k++) ASSERT_EQ(XO_OK, xo__channel_recv(s, 5000, &held[k])) << xo_last_error();
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(child, waitpid(child, &status, 0));
    xo_frame_t more{};
    EXPECT_EQ(XO_ECLOSED, xo__channel_recv(s, 2000, &more));
    xo__channel_close(s);
    xo__listener_close(lis);
    for (int k = 0; k < kFrames; k++) {
        EXPECT_TRUE(Holds(held[k], kLen, k)); // mapped here, whatever became of the peer
        xo__frame_release(&held[k]);
    }
    EXPECT_EQ(segs0, CountMappings("xo-shm-seg"));
    EXPECT_EQ(fds0, CountFds());
}

} // namespace
