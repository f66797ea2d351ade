// Device buffers lent between devices of one process (issue 10 item 17): a pool that owns its own device gets a
// pointer usable on that device (xoscar/device_buf.h: "a pointer usable on dev"), not the owner's raw pointer that
// its device refuses.
#include <gtest/gtest.h>
#include <msgpack.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "xoscar/device_buf.h"
#include "xoscar/gpu.h"

namespace {

struct Packed {
    msgpack_sbuffer buf;
    msgpack_zone zone;
    msgpack_object obj;
    Packed() { msgpack_sbuffer_init(&buf); msgpack_zone_init(&zone, 1024); }
    ~Packed() { msgpack_zone_destroy(&zone); msgpack_sbuffer_destroy(&buf); }
};

xo_device_t *open_host(int index)
{
    setenv("XO_HOST_DEVICES", "2", 0); // host:0 and host:1, each with its own allocations
    const xo_device_ops_t *host = xo_device_backend_find("host");
    xo_device_t *dev = nullptr;
    EXPECT_NE(host, nullptr);
    EXPECT_EQ(xo_device_open(host, index, nullptr, &dev), XO_OK) << xo_last_error();
    return dev;
}

void pack(Packed &p, xo_device_t *dev, void *ptr, size_t n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.buf, msgpack_sbuffer_write);
    ASSERT_EQ(xo_pack_device_buf(&pk, dev, ptr, n), XO_OK) << xo_last_error();
    size_t off = 0;
    ASSERT_EQ(msgpack_unpack(p.buf.data, p.buf.size, &off, &p.zone, &p.obj), MSGPACK_UNPACK_SUCCESS);
}

TEST(DeviceBufLocal, ABufferOfAnotherDeviceOfThisProcessIsUsableOnTheReceiversDevice)
{
    xo_device_t *owner = open_host(0), *reader = open_host(1);
    ASSERT_TRUE(owner && reader);
    const size_t n = 1 << 16;
    void *src = nullptr;
    ASSERT_EQ(xo_device_alloc(owner, n, &src), XO_OK) << xo_last_error();
    std::vector<unsigned char> pattern(n), back(n, 0);
    for (size_t i = 0; i < n; i++) pattern[i] = (unsigned char)(i * 7 + 3);
    ASSERT_EQ(xo_device_memcpy(owner, src, pattern.data(), n, XO_MEMCPY_HOST_TO_DEVICE, nullptr), XO_OK);
    Packed p;
    pack(p, owner, src, n);

    void *got = nullptr;
    size_t size = 0;
    bool imported = false;
    ASSERT_EQ(xo_unpack_device_buf(reader, &p.obj, &got, &size, &imported), XO_OK) << xo_last_error();
    EXPECT_EQ(size, n);
    // The reader's device reads the owner's bytes, and a write through it reaches the owner (a lend, not a copy).
    ASSERT_EQ(xo_device_memcpy(reader, back.data(), got, n, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK)
        << xo_last_error();
    EXPECT_EQ(back, pattern);
    unsigned char mark = 0xA5;
    ASSERT_EQ(xo_device_memcpy(reader, got, &mark, 1, XO_MEMCPY_HOST_TO_DEVICE, nullptr), XO_OK);
    unsigned char seen = 0;
    ASSERT_EQ(xo_device_memcpy(owner, &seen, src, 1, XO_MEMCPY_DEVICE_TO_HOST, nullptr), XO_OK);
    EXPECT_EQ(seen, mark);
    EXPECT_TRUE(imported) << "the reader's device works on an import of the owner's memory";
    if (imported) {
        EXPECT_EQ(xo_release_device_buf(reader, got), XO_OK) << xo_last_error();
    }
    EXPECT_EQ(xo_device_free(owner, src), XO_OK);
    xo_device_close(reader);
    xo_device_close(owner);
}

TEST(DeviceBufLocal, TheOwnersOwnDeviceStillGetsThePointerItself)
{
    xo_device_t *owner = open_host(0);
    ASSERT_TRUE(owner);
    void *src = nullptr;
    ASSERT_EQ(xo_device_alloc(owner, 4096, &src), XO_OK);
    Packed p;
    pack(p, owner, src, 4096);
    void *got = nullptr;
    bool imported = true;
    ASSERT_EQ(xo_unpack_device_buf(owner, &p.obj, &got, nullptr, &imported), XO_OK) << xo_last_error();
    EXPECT_EQ(got, src);
    EXPECT_FALSE(imported);
    EXPECT_EQ(xo_device_free(owner, src), XO_OK);
    xo_device_close(owner);
}

} // namespace
