// Device buffers fetched by staging (include/xoscar/device_buf.h): between real processes of a host with
// XO_DEVICE_IPC=0, which takes the path another host takes (a netns case is tests/integration/devbuf_multihost_test.sh).
// Content, a 64 MiB buffer in chunks, copy semantics, device memory returning to 0 on both sides, forged and stale
// descriptors, an owner dying mid-fetch, receivers that cannot receive. Uses tests/modules/devbuf_actors.c.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/runtime/pool_fixture.h"
#include "xoscar/device_buf.h"
#include "xoscar/host.h"

namespace {

const char *kModules[] = {XO_DEVBUF_MODULE_PATH};
constexpr uint64_t kCap = 160u << 20;

struct Ref {
    xo_ref_t *r = nullptr;
    ~Ref() { xo_ref_free(r); }
};

class Staging : public ::testing::Test {
  protected:
    void SetUp() override { setenv("XO_DEVICE_IPC", "0", 1); } // sub pools inherit it: they stage, not import

    // A host: the main pool (this process) with a device; sub pools with devices unless devices is false.
    void start(unsigned n_subs, bool devices = true, unsigned sub_threads = 0)
    {
        std::vector<xo_sub_pool_config_t> subs(n_subs);
        for (auto &s : subs) {
            s.device = devices ? "host:0" : nullptr;
            s.device_capacity = devices ? kCap : 0;
            s.n_threads = sub_threads;
        }
        xo_host_config_t cfg{};
        cfg.n_sub_pools = n_subs;
        cfg.sub_pools = subs.data();
        cfg.modules = kModules;
        cfg.n_modules = 1;
        cfg.pool_binary = XO_POOL_BINARY;
        cfg.main_device = "host:0";
        cfg.main_device_capacity = kCap;
        ASSERT_EQ(xo_host_start(&cfg, &host), XO_OK) << xo_last_error();
    }
    void TearDown() override
    {
        if (host) xo_host_stop(host);
        unsetenv("XO_DEVICE_IPC");
    }

    // Creates cls in pool index (-1: the main pool).
    void create(const char *cls, const char *uid, int index, Ref &ref)
    {
        xo_placement_t p{};
        p.strategy = index < 0 ? "main_pool" : "process_index";
        p.process_index = index < 0 ? 0 : (unsigned)index + 1;
        ASSERT_EQ(xo_host_create_actor(host, cls, nullptr, uid, &p, &ref.r), XO_OK) << xo_last_error();
    }

    static uint64_t call_u64(const Ref &ref, const char *method, xo_args_t *args = nullptr)
    {
        xo_result_t *r = nullptr;
        xo_status_t st = xo_call(ref.r, method, args, 30000, &r);
        EXPECT_EQ(st, XO_OK) << method << ": " << xo_last_error();
        uint64_t v = UINT64_MAX;
        if (st == XO_OK) {
            EXPECT_EQ(xo_result_unpack(r, "u", &v), XO_OK);
        }
        xo_result_free(r);
        return v;
    }

    struct Check {
        bool ok = false, imported = false, intact = false;
        uint64_t size = 0, used_during = 0;
    };

    // owner.lend(reader): the reader checks the pattern on what it got, then zeroes it.
    static xo_status_t lend(const Ref &owner, const char *reader_addr, const char *reader_uid, uint64_t seed,
                            Check *c)
    {
        xo_result_t *r = nullptr;
        xo_status_t st = xo_call(owner.r, "lend", xo_args("ssu", reader_addr, reader_uid, seed), 30000, &r);
        if (st != XO_OK) return st;
        EXPECT_EQ(xo_result_unpack(r, "[[ttuu]t]", &c->ok, &c->imported, &c->size, &c->used_during, &c->intact),
                  XO_OK);
        xo_result_free(r);
        return XO_OK;
    }

    xo_host_t *host = nullptr;
};

TEST_F(Staging, ASubPoolReadsALentBufferAsACopy)
{
    start(1);
    Ref owner, reader;
    create("StageOwner", "owner", -1, owner);
    create("StageReader", "reader", 0, reader);
    const uint64_t size = (1u << 20) + 12345; // not a multiple of anything
    EXPECT_GE(call_u64(owner, "alloc", xo_args("uu", size, (uint64_t)7)), size);
    Check c;
    ASSERT_EQ(lend(owner, xo_host_sub_pool_address(host, 1), "reader", 7, &c), XO_OK) << xo_last_error();
    EXPECT_TRUE(c.ok) << "the staged copy does not hold the owner's bytes";
    EXPECT_TRUE(c.imported) << "a staged copy must be reported as something to release";
    EXPECT_EQ(c.size, size);
    EXPECT_GE(c.used_during, size) << "the copy lives on the reader's device";
    EXPECT_TRUE(c.intact) << "the reader zeroed its copy: the owner's buffer must not change";
    // The copy was freed when the reader's method returned; the owner's buffer when it frees it.
    EXPECT_EQ(call_u64(reader, "used"), 0u);
    EXPECT_EQ(call_u64(owner, "free"), 0u);
}

TEST_F(Staging, A64MiBBufferCrossesInChunksBetweenSubPools)
{
    start(2);
    Ref owner, reader;
    create("StageOwner", "owner", 0, owner);
    create("StageReader", "reader", 1, reader);
    const uint64_t size = 64u << 20;
    EXPECT_GE(call_u64(owner, "alloc", xo_args("uu", size, (uint64_t)99)), size);
    Check c;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(lend(owner, xo_host_sub_pool_address(host, 2), "reader", 99, &c), XO_OK) << xo_last_error();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("64 MiB lent and staged between two sub pools (XO_DEVICE_IPC=0, with the reader's pattern check): "
                "%.1f ms, %.0f MiB/s\n",
                s * 1e3, 64 / s);
    EXPECT_TRUE(c.ok);
    EXPECT_EQ(c.size, size);
    EXPECT_TRUE(c.intact);
    EXPECT_EQ(call_u64(reader, "used"), 0u);
    EXPECT_EQ(call_u64(owner, "free"), 0u);
}

// The descriptor a result carries, as bytes to alter.
std::vector<char> descriptor_of(const xo_result_t *r)
{
    const msgpack_object *o = xo_result_value(r);
    if (!o || o->type != MSGPACK_OBJECT_EXT) return {};
    return std::vector<char>(o->via.ext.ptr, o->via.ext.ptr + o->via.ext.size);
}

msgpack_object ext_of(const std::vector<char> &d, int8_t type = XO_EXT_DEVICE_BUF)
{
    msgpack_object o{};
    o.type = MSGPACK_OBJECT_EXT;
    o.via.ext.type = type;
    o.via.ext.ptr = d.data();
    o.via.ext.size = (uint32_t)d.size();
    return o;
}

uint64_t used_of(xo_device_t *dev)
{
    xo_device_mem_info_t mi{};
    xo_device_mem_info(dev, &mi);
    return mi.used;
}

TEST_F(Staging, ForgedMalformedAndStaleDescriptorsFailCleanly)
{
    start(1);
    Ref owner;
    create("StageOwner", "owner", 0, owner);
    const uint64_t size = 3u << 20;
    call_u64(owner, "alloc", xo_args("uu", size, (uint64_t)5));
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(owner.r, "desc", nullptr, 5000, &r), XO_OK) << xo_last_error();
    std::vector<char> good = descriptor_of(r);
    xo_result_free(r);
    ASSERT_GT(good.size(), 214u) << "a descriptor naming its owner's address";

    // This thread is a receiver outside methods, with a device of its own.
    xo_device_t *dev = nullptr;
    xo_device_config_t dc{};
    dc.capacity = 16u << 20;
    ASSERT_EQ(xo_device_open(xo_device_backend_find("host"), 0, &dc, &dev), XO_OK) << xo_last_error();
    msgpack_object o = ext_of(good);
    void *p = nullptr;
    size_t got = 0;
    bool imported = false;
    ASSERT_EQ(xo_unpack_device_buf(dev, &o, &p, &got, &imported), XO_OK) << xo_last_error();
    EXPECT_TRUE(imported);
    EXPECT_EQ(got, size);
    EXPECT_EQ(used_of(dev), size);
    std::vector<unsigned char> bytes(size);
    ASSERT_EQ(xo_device_memcpy(dev, bytes.data(), p, size, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    uint64_t w1 = 0;
    std::memcpy(&w1, bytes.data() + 8, 8);
    EXPECT_EQ(w1, 0x9E3779B97F4A7C15ull + 5) << "the second word of the pattern";
    // Outside methods the caller releases; a pointer that is neither copy nor import is refused, not freed.
    EXPECT_EQ(xo_release_device_buf(dev, p), XO_OK) << xo_last_error();
    EXPECT_EQ(used_of(dev), 0u);
    EXPECT_EQ(xo_release_device_buf(dev, p), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("neither a staged copy nor an open import"), std::string::npos);

    auto expect_fail = [&](std::vector<char> d, xo_status_t want, const char *text, int8_t type = XO_EXT_DEVICE_BUF) {
        msgpack_object m = ext_of(d, type);
        void *q = nullptr;
        EXPECT_EQ(xo_unpack_device_buf(dev, &m, &q, nullptr, nullptr), want) << text << ": " << xo_last_error();
        EXPECT_NE(std::string(xo_last_error()).find(text), std::string::npos) << xo_last_error();
        EXPECT_EQ(used_of(dev), 0u) << "a failed fetch leaves nothing allocated";
    };
    const size_t kToken = 4 + 1 + 36 + 8 + 4 + 8 + 8 + 1 + XO_DEVICE_IPC_HANDLE_SIZE; // offsets of device_buf.c
    const size_t kSize = 4 + 1 + 36 + 8 + 4 + 8, kFlags = kSize + 8;
    const size_t kAddrLen = kToken + 16 + 8 + XO_DEVICE_IPC_HANDLE_SIZE;
    std::vector<char> d = good;
    d[kToken + 3] ^= 1;
    expect_fail(d, XO_EAUTH, "token does not match");
    d = good; // a larger range than was lent: the token covers the size
    d[kSize + 7] = (char)(d[kSize + 7] + 1);
    expect_fail(d, XO_EAUTH, "token does not match");
    d = good; // claims a ready event without a valid handle: the owner's service refuses to wait for junk
    d[kFlags] = (char)(d[kFlags] | 4);
    expect_fail(d, XO_EINVAL, "not an event IPC handle");
    d = good;
    d[4] = 1;
    expect_fail(d, XO_EBADARGS, "version 1");
    d = good;
    d.pop_back();
    expect_fail(d, XO_EBADARGS, "its fields make");
    d.resize(100);
    expect_fail(d, XO_EBADARGS, "too short");
    d = good;
    d[kAddrLen] = (char)(d[kAddrLen] + 1);
    d.push_back('x');
    expect_fail(d, XO_EBADARGS, "bad owner address");
    expect_fail(good, XO_EBADARGS, "expected a device buffer", 41);
    {
        void *q = nullptr;
        EXPECT_EQ(xo_unpack_device_buf(nullptr, &o, &q, nullptr, nullptr), XO_EINVAL);
        EXPECT_NE(std::string(xo_last_error()).find("owns none"), std::string::npos) << xo_last_error();
    }
    // The owner frees it: the same descriptor (a stale lend) is refused by the owner's device layer.
    EXPECT_EQ(call_u64(owner, "free"), 0u);
    expect_fail(good, XO_EINVAL, "not in a live allocation");
    xo_device_close(dev);
}

TEST_F(Staging, AnOwnerDyingMidFetchFailsTheFetchWithoutAHang)
{
    start(1, true, 1); // one scheduler thread in the owner's pool, which spin() keeps busy
    Ref owner;
    create("StageOwner", "owner", 0, owner);
    const uint64_t size = 32u << 20;
    call_u64(owner, "alloc", xo_args("uu", size, (uint64_t)1));
    xo_result_t *r = nullptr;
    ASSERT_EQ(xo_call(owner.r, "desc", nullptr, 5000, &r), XO_OK) << xo_last_error();
    std::vector<char> desc = descriptor_of(r);
    xo_result_free(r);
    ASSERT_EQ(xo_tell(owner.r, "spin", xo_args("l", (int64_t)20000)), XO_OK); // the reads queue behind it

    xo_device_t *dev = nullptr;
    xo_device_config_t dc{};
    dc.capacity = 64u << 20;
    ASSERT_EQ(xo_device_open(xo_device_backend_find("host"), 0, &dc, &dev), XO_OK) << xo_last_error();
    xo_status_t st = XO_OK;
    std::string text;
    auto t0 = std::chrono::steady_clock::now();
    std::thread fetch([&] {
        msgpack_object o = ext_of(desc);
        void *p = nullptr;
        st = xo_unpack_device_buf(dev, &o, &p, nullptr, nullptr);
        text = xo_last_error();
        if (st == XO_OK) xo_release_device_buf(dev, p);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_GE(used_of(dev), size) << "the fetch has started: its buffer is allocated";
    kill(xo_host_sub_pool_pid(host, 1), SIGKILL);
    fetch.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(st, XO_EPOOLDIED) << text;
    EXPECT_NE(text.find("of a 33554432-byte device buffer from pool"), std::string::npos) << text;
    EXPECT_LT(s, 10.0) << "the fetch must fail when the owner dies, not wait out its timeout";
    EXPECT_EQ(used_of(dev), 0u);
    xo_device_close(dev);
}

TEST_F(Staging, ReceiversThatCannotReceiveSaySo)
{
    start(2, false); // sub pools without devices
    Ref owner, reader;
    create("StageOwner", "owner", -1, owner);
    create("StageReader", "reader", 0, reader);
    call_u64(owner, "alloc", xo_args("uu", (uint64_t)4096, (uint64_t)3));
    Check c;
    EXPECT_EQ(lend(owner, xo_host_sub_pool_address(host, 1), "reader", 3, &c), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("this pool owns none"), std::string::npos) << xo_last_error();
    call_u64(owner, "free");
}

TEST_F(Staging, AnInProcessPoolsBuffersCannotBeFetched)
{
    start(1);
    Ref reader;
    create("StageReader", "reader", 0, reader);
    // A pool with a device but no process address: nobody outside this process can call it.
    xo_pool_config_t pc{};
    pc.n_threads = 1;
    pc.device = "host:0";
    pc.device_capacity = 1u << 20;
    xo_pool_t *inproc = nullptr;
    ASSERT_EQ(xo_pool_start(&pc, &inproc), XO_OK) << xo_last_error();
    xo_device_t *dev = xo_pool_device(inproc);
    void *p = nullptr;
    ASSERT_EQ(xo_device_alloc(dev, 4096, &p), XO_OK);
    xo_args_t *a = xo_args_new(2);
    ASSERT_EQ(xo_pack_device_buf(xo_args_packer(a), dev, p, 4096), XO_OK) << xo_last_error();
    xo_pack(xo_args_packer(a), "u", (uint64_t)0);
    EXPECT_EQ(xo_call(reader.r, "check", a, 5000, nullptr), XO_EUNREACHABLE);
    EXPECT_NE(std::string(xo_last_error()).find("in-process pool"), std::string::npos) << xo_last_error();
    EXPECT_EQ(call_u64(reader, "used"), 0u);
    xo_device_free(dev, p);
    xo_pool_stop(inproc);
}

} // namespace
