// Large arguments and results between processes of a host (issue 14): byte-exact both ways at several sizes, and
// read where the transport put them: a method in a sub pool sees its large argument in the pooled shm segment
// (a borrowed view, not a copy on its heap), and the caller reads a large result in place too.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "xoscar/host.h"
#include "xoscar/xoscar.h"

namespace {

const char *kModules[] = {XO_TEST_MODULE_PATH};

std::string MappingOf(const void *p)
{
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        unsigned long lo, hi;
        if (sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) return line;
    }
    return "";
}

class RemoteBulk : public ::testing::Test {
  protected:
    void SetUp() override
    {
        setenv("XO_TRANSPORT", "shm", 1);
        xo_sub_pool_config_t sub{};
        sub.n_threads = 2;
        xo_host_config_t cfg{};
        cfg.n_sub_pools = 1;
        cfg.sub_pools = &sub;
        cfg.modules = kModules;
        cfg.n_modules = 1;
        cfg.pool_binary = XO_POOL_BINARY;
        ASSERT_EQ(xo_host_start(&cfg, &host), XO_OK) << xo_last_error();
        xo_placement_t p{};
        p.strategy = "process_index";
        p.process_index = 1;
        ASSERT_EQ(xo_host_create_actor(host, "Echo", nullptr, nullptr, &p, &echo), XO_OK) << xo_last_error();
    }
    void TearDown() override
    {
        xo_ref_free(echo);
        if (host) xo_host_stop(host);
        unsetenv("XO_TRANSPORT");
    }
    xo_host_t *host = nullptr;
    xo_ref_t *echo = nullptr;
};

std::vector<uint8_t> Pattern(size_t n, int k)
{
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(i * 13 + k + (i >> 10));
    return v;
}

TEST_F(RemoteBulk, LargeArgumentsAreReadInPlaceInTheSharedSegment)
{
    std::vector<uint8_t> big = Pattern(1 << 20, 1), small = Pattern(100, 2);
    xo_result_t *r = nullptr;
    ASSERT_EQ(XO_OK, xo_call(echo, "where", xo_args("b", big.data(), big.size()), 10000, &r)) << xo_last_error();
    xo_str_t where{};
    ASSERT_EQ(XO_OK, xo_result_unpack(r, "s", &where));
    EXPECT_NE(std::string::npos, std::string(where.ptr, where.len).find("xo-shm-seg"))
        << "the method read its argument from '" << std::string(where.ptr, where.len) << "', not the segment";
    xo_result_free(r);
    // A small argument is copied out of the ring: the segment is for large ones.
    ASSERT_EQ(XO_OK, xo_call(echo, "where", xo_args("b", small.data(), small.size()), 10000, &r));
    ASSERT_EQ(XO_OK, xo_result_unpack(r, "s", &where));
    EXPECT_EQ(std::string::npos, std::string(where.ptr, where.len).find("xo-shm-seg"));
    xo_result_free(r);
}

// Several sizes on both sides of each threshold (the wire's segment, the pool, the one-shot memfd), there and back,
// a few at once: every byte arrives, and a large result is read from the segment it came in.
TEST_F(RemoteBulk, ArgumentsAndResultsOfManySizesArriveByteExact)
{
    const size_t sizes[] = {1, 1000, (64 << 10) - 1, 64 << 10, 200 << 10, 256 << 10, 1 << 20, (5 << 20) + 3};
    std::vector<std::vector<uint8_t>> sent;
    std::vector<xo_future_t *> fs;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sent.push_back(Pattern(sizes[i], static_cast<int>(i)));
        xo_future_t *f = nullptr;
        ASSERT_EQ(XO_OK, xo_send(echo, "echo", xo_args("b", sent[i].data(), sent[i].size()), &f)) << xo_last_error();
        fs.push_back(f);
    }
    for (size_t i = 0; i < fs.size(); i++) {
        xo_result_t *r = nullptr;
        ASSERT_EQ(XO_OK, xo_future_wait(fs[i], 20000, &r)) << xo_last_error();
        xo_bytes_t b{};
        ASSERT_EQ(XO_OK, xo_result_unpack(r, "b", &b));
        ASSERT_EQ(sizes[i], b.len);
        EXPECT_EQ(0, memcmp(b.ptr, sent[i].data(), b.len)) << "size " << sizes[i];
        if (sizes[i] >= (1 << 20)) {
            EXPECT_NE(std::string::npos, MappingOf(b.ptr).find("xo-shm-seg")) << "result of " << sizes[i] << " copied";
        }
        xo_result_free(r);
        xo_future_free(fs[i]);
    }
}

// Lent binaries ('B') to another process: copied once straight into the segment before xo_send returns, so the
// caller may overwrite its buffer at once; several in one list, large and small, all arrive.
TEST_F(RemoteBulk, LentBinariesArriveAndTheBufferIsFreeOnceTheSendReturns)
{
    std::vector<uint8_t> big = Pattern(3 << 20, 5), mid = Pattern(100 << 10, 6), tiny = Pattern(10, 7);
    std::vector<uint8_t> want_big = big, want_mid = mid, want_tiny = tiny;
    xo_future_t *f = nullptr;
    ASSERT_EQ(XO_OK, xo_send(echo, "echo",
                             xo_args("[BbB]", big.data(), big.size(), mid.data(), mid.size(), tiny.data(), tiny.size()),
                             &f))
        << xo_last_error();
    std::fill(big.begin(), big.end(), 0);
    std::fill(tiny.begin(), tiny.end(), 0);
    xo_result_t *r = nullptr;
    ASSERT_EQ(XO_OK, xo_future_wait(f, 20000, &r)) << xo_last_error();
    xo_bytes_t a{}, b{}, c{};
    ASSERT_EQ(XO_OK, xo_result_unpack(r, "[bbb]", &a, &b, &c));
    ASSERT_EQ(want_big.size(), a.len);
    EXPECT_EQ(0, memcmp(a.ptr, want_big.data(), a.len));
    ASSERT_EQ(want_mid.size(), b.len);
    EXPECT_EQ(0, memcmp(b.ptr, want_mid.data(), b.len));
    ASSERT_EQ(want_tiny.size(), c.len);
    EXPECT_EQ(0, memcmp(c.ptr, want_tiny.data(), c.len));
    xo_result_free(r);
    xo_future_free(f);
}

// Binaries lent to a result ('B') in another process: spliced into the reply's frame (one copy, from the method's
// bytes into the segment), byte-exact, in order with the copied parts around them; more than the lent limit are
// copied in, and still arrive.
TEST_F(RemoteBulk, BinariesLentToAResultArriveByteExact)
{
    const size_t sizes[] = {3 << 20, 10, 100 << 10, 0, 1 << 20};
    std::vector<std::vector<uint8_t>> sent;
    xo_args_t *a = xo_args_new(sizeof sizes / sizeof sizes[0]);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sent.push_back(Pattern(sizes[i], 20 + static_cast<int>(i)));
        ASSERT_EQ(XO_OK, xo_pack(xo_args_packer(a), "b", sent[i].data(), sent[i].size()));
    }
    xo_result_t *r = nullptr;
    ASSERT_EQ(XO_OK, xo_call(echo, "echo_lent", a, 20000, &r)) << xo_last_error();
    const msgpack_object *v = xo_result_value(r);
    ASSERT_EQ(MSGPACK_OBJECT_ARRAY, v->type);
    ASSERT_EQ(sent.size(), v->via.array.size);
    for (size_t i = 0; i < sent.size(); i++) {
        const msgpack_object *o = &v->via.array.ptr[i];
        ASSERT_EQ(MSGPACK_OBJECT_BIN, o->type);
        ASSERT_EQ(sent[i].size(), o->via.bin.size) << "item " << i;
        if (!sent[i].empty()) EXPECT_EQ(0, memcmp(o->via.bin.ptr, sent[i].data(), sent[i].size())) << "item " << i;
    }
    xo_result_free(r);

    // 20 lent binaries: the first 16 are lent, the rest copied into the result.
    std::vector<uint8_t> piece = Pattern(70 << 10, 9);
    a = xo_args_new(20);
    for (int i = 0; i < 20; i++) {
        piece[0] = static_cast<uint8_t>(i);
        ASSERT_EQ(XO_OK, xo_pack(xo_args_packer(a), "b", piece.data(), piece.size()));
    }
    ASSERT_EQ(XO_OK, xo_call(echo, "echo_lent", a, 20000, &r)) << xo_last_error();
    v = xo_result_value(r);
    ASSERT_EQ(20u, v->via.array.size);
    for (int i = 0; i < 20; i++) {
        const msgpack_object *o = &v->via.array.ptr[i];
        ASSERT_EQ(piece.size(), o->via.bin.size);
        EXPECT_EQ(static_cast<uint8_t>(i), static_cast<uint8_t>(o->via.bin.ptr[0]));
        EXPECT_EQ(0, memcmp(o->via.bin.ptr + 1, piece.data() + 1, piece.size() - 1)) << "item " << i;
    }
    xo_result_free(r);
}

// A result larger than a frame may be (256 MiB plus the envelope): nothing can go out, so the caller is told why
// at once instead of waiting for its timeout; the connection stays usable.
TEST_F(RemoteBulk, AResultTooLargeForAFrameFailsTheCallAtOnce)
{
    xo_result_t *r = nullptr;
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(XO_EMSGSIZE, xo_call(echo, "zeros", xo_args("l", (int64_t)(257 << 20)), 60000, &r));
    EXPECT_NE(nullptr, strstr(xo_last_error(), "the reply could not be sent")) << xo_last_error();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
    ASSERT_EQ(XO_OK, xo_call(echo, "zeros", xo_args("l", (int64_t)(1 << 20)), 10000, &r)) << xo_last_error();
    xo_bytes_t b{};
    ASSERT_EQ(XO_OK, xo_result_unpack(r, "b", &b));
    EXPECT_EQ(size_t(1) << 20, b.len);
    xo_result_free(r);
}

} // namespace
