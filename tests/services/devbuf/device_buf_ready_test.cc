// Device buffers lent with a ready event (xo_pack_device_buf_ready): the owner's stream is still writing the buffer
// (300 ms of earlier stream work first) when the descriptor leaves. Every receiver must read the new bytes: one that
// unpacks onto its own stream has that stream wait on the device (same process, or same host through the event's
// IPC handle) and gets its pointer back at once; one without a stream waits on the host; one that stages
// (XO_DEVICE_IPC=0, the path another host takes) is served only once the owner's event has completed.
// Uses tests/modules/devbuf_actors.c; real processes (a host's main pool here and a sub pool).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "xoscar/device_buf.h"
#include "xoscar/host.h"

namespace {

const char *kModules[] = {XO_DEVBUF_MODULE_PATH};
constexpr uint64_t kCap = 64u << 20;
constexpr uint64_t kSize = (4u << 20) + 4000;

struct Ref {
    xo_ref_t *r = nullptr;
    ~Ref() { xo_ref_free(r); }
};

struct Path {
    const char *device; // of every pool: "host:0", or "cuda:0" (skipped without a CUDA device)
    bool staged;        // XO_DEVICE_IPC=0 in every process of the host: stage instead of importing
};

void PrintTo(const Path &p, std::ostream *os) { *os << p.device << (p.staged ? ", staged" : ", imported"); }

bool have_cuda_device()
{
    const xo_device_ops_t *be = xo_device_backend_find("cuda");
    size_t n = 0;
    return be && xo_device_discover(be, nullptr, 0, &n) == XO_OK && n > 0;
}

class ReadyEvent : public ::testing::TestWithParam<Path> {
  protected:
    void SetUp() override
    {
        if (std::strncmp(GetParam().device, "cuda", 4) == 0 && !have_cuda_device())
            GTEST_SKIP() << "no CUDA device (or the cuda backend is not in this build)";
        if (GetParam().staged) setenv("XO_DEVICE_IPC", "0", 1);
        const char *device = GetParam().device;
        xo_sub_pool_config_t sub{};
        sub.device = device;
        sub.device_capacity = kCap;
        xo_host_config_t cfg{};
        cfg.n_sub_pools = 1;
        cfg.sub_pools = &sub;
        cfg.modules = kModules;
        cfg.n_modules = 1;
        cfg.pool_binary = XO_POOL_BINARY;
        cfg.main_device = device;
        cfg.main_device_capacity = kCap;
        ASSERT_EQ(xo_host_start(&cfg, &host), XO_OK) << xo_last_error();
        xo_placement_t p{};
        p.strategy = "main_pool";
        ASSERT_EQ(xo_host_create_actor(host, "StageOwner", nullptr, "owner", &p, &owner.r), XO_OK) << xo_last_error();
        ASSERT_EQ(xo_host_create_actor(host, "StageReader", nullptr, "near", &p, &near.r), XO_OK) << xo_last_error();
        p.strategy = "process_index";
        p.process_index = 1;
        ASSERT_EQ(xo_host_create_actor(host, "StageReader", nullptr, "far", &p, &far.r), XO_OK) << xo_last_error();
        xo_result_t *r = nullptr;
        ASSERT_EQ(xo_call(owner.r, "alloc", xo_args("uu", kSize, (uint64_t)1), 30000, &r), XO_OK) << xo_last_error();
        xo_result_free(r);
    }
    void TearDown() override
    {
        xo_ref_free(owner.r);
        xo_ref_free(near.r);
        xo_ref_free(far.r);
        owner.r = near.r = far.r = nullptr;
        if (host) xo_host_stop(host);
        unsetenv("XO_DEVICE_IPC");
    }

    // owner.lend_ready(reader, method): the reader's result.
    xo_result_t *lend(const char *reader_addr, const char *uid, const char *method, uint64_t seed)
    {
        xo_result_t *r = nullptr;
        xo_status_t st = xo_call(owner.r, "lend_ready", xo_args("ssus", reader_addr, uid, seed, method), 30000, &r);
        EXPECT_EQ(st, XO_OK) << xo_last_error();
        return r;
    }

    xo_host_t *host = nullptr;
    Ref owner, near, far;
};

TEST_P(ReadyEvent, AReceiverOnAStreamReadsTheNewBytes)
{
    // Another process of this host.
    xo_result_t *r = lend(xo_host_sub_pool_address(host, 1), "far", "check_on", 2);
    ASSERT_NE(r, nullptr);
    bool ok = false, imported = false;
    double unpack_ms = -1;
    ASSERT_EQ(xo_result_unpack(r, "[ttd]", &ok, &imported, &unpack_ms), XO_OK);
    xo_result_free(r);
    EXPECT_TRUE(ok) << "the receiver read the buffer before the owner's stream had written it";
    EXPECT_TRUE(imported);
    if (!GetParam().staged)
        EXPECT_LT(unpack_ms, 150) << "an import onto a stream should queue the wait, not wait 300 ms on the host";
    else
        EXPECT_GE(unpack_ms, 150) << "a staged copy can only be made once the owner's work is done";

    // The owner's own process: the pointer itself, and the owner's event.
    r = lend(xo_host_address(host), "near", "check_on", 3);
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(xo_result_unpack(r, "[ttd]", &ok, &imported, &unpack_ms), XO_OK);
    xo_result_free(r);
    EXPECT_TRUE(ok);
    EXPECT_FALSE(imported);
    EXPECT_LT(unpack_ms, 150) << "the same device's stream should wait, not this thread";
}

TEST_P(ReadyEvent, AReceiverWithoutAStreamWaitsOnTheHost)
{
    xo_result_t *r = lend(xo_host_sub_pool_address(host, 1), "far", "check", 4);
    ASSERT_NE(r, nullptr);
    bool ok = false, imported = false;
    uint64_t size = 0, used = 0;
    ASSERT_EQ(xo_result_unpack(r, "[ttuu]", &ok, &imported, &size, &used), XO_OK);
    xo_result_free(r);
    EXPECT_TRUE(ok) << "the receiver read the buffer before the owner's stream had written it";
    EXPECT_EQ(size, kSize);
}

INSTANTIATE_TEST_SUITE_P(Paths, ReadyEvent,
                         ::testing::Values(Path{"host:0", false}, Path{"host:0", true}, Path{"cuda:0", false},
                                           Path{"cuda:0", true}),
                         [](const ::testing::TestParamInfo<Path> &i) {
                             return std::string(i.param.device[0] == 'h' ? "host" : "cuda") +
                                    (i.param.staged ? "_staged" : "_ipc");
                         });

// An event that cannot be shared is refused when packing: a receiver in another process could not wait for it.
TEST(ReadyEventPacking, APlainOrForeignEventIsRefused)
{
    xo_device_t *dev = nullptr, *other = nullptr;
    xo_device_config_t cfg{};
    cfg.capacity = 1 << 20;
    ASSERT_EQ(xo_device_open(xo_device_backend_find("host"), 0, &cfg, &dev), XO_OK);
    ASSERT_EQ(xo_device_open(xo_device_backend_find("host"), 0, &cfg, &other), XO_OK);
    void *p = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 4096, &p), XO_OK);
    xo_device_event_t *plain = nullptr, *foreign = nullptr;
    ASSERT_EQ(xo_device_event_create(dev, &plain), XO_OK);
    ASSERT_EQ(xo_device_event_create_ipc(other, &foreign), XO_OK);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    EXPECT_EQ(xo_pack_device_buf_ready(&pk, dev, p, 4096, plain), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("xo_device_event_create_ipc"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_pack_device_buf_ready(&pk, dev, p, 4096, foreign), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("another device"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_pack_device_buf_ready(&pk, dev, p, 4096, nullptr), XO_EINVAL);
    EXPECT_EQ(sb.size, 0u) << "nothing is packed on an error";
    msgpack_sbuffer_destroy(&sb);
    xo_device_event_destroy(plain);
    xo_device_event_destroy(foreign);
    xo_device_close(other);
    xo_device_close(dev);
}

} // namespace
