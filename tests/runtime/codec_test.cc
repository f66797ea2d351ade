// The format-string codec over msgpack: packing, unpacking, and the errors a method's caller sees.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

extern "C" {
#include "runtime/codec.h"
}

namespace {

struct Decoded {
    msgpack_zone zone;
    msgpack_object obj;
    explicit Decoded(xo_args_t *a)
    {
        msgpack_zone_init(&zone, 256);
        size_t len;
        const char *data = xo__args_data(a, &len);
        EXPECT_EQ(xo__decode(data, len, &zone, &obj), XO_OK);
    }
    ~Decoded() { msgpack_zone_destroy(&zone); }
};

TEST(Codec, ScalarsRoundTrip)
{
    xo_args_t *a = xo_args("ilud tns", -3, (int64_t)1 << 40, (uint64_t)UINT64_MAX, 0.25, 1, "hi");
    ASSERT_NE(a, nullptr);
    Decoded d(a);
    int i;
    int64_t l;
    uint64_t u;
    double dd;
    bool t;
    xo_str_t s;
    ASSERT_EQ(xo_unpack(&d.obj, "ilud tns", &i, &l, &u, &dd, &t, &s), XO_OK) << xo_last_error();
    EXPECT_EQ(i, -3);
    EXPECT_EQ(l, (int64_t)1 << 40);
    EXPECT_EQ(u, UINT64_MAX);
    EXPECT_EQ(dd, 0.25);
    EXPECT_TRUE(t);
    EXPECT_EQ(std::string(s.ptr, s.len), "hi");
    xo_args_free(a);
}

TEST(Codec, NestedArraysAndMaps)
{
    xo_args_t *a = xo_args("[i[ii]]{sisi}", 1, 2, 3, "a", 4, "b", 5);
    ASSERT_NE(a, nullptr);
    Decoded d(a);
    int x, y, z;
    const msgpack_object *m = nullptr;
    ASSERT_EQ(xo_unpack(&d.obj, "[i[ii]]o", &x, &y, &z, &m), XO_OK) << xo_last_error();
    EXPECT_EQ(x + y + z, 6);
    ASSERT_EQ(m->type, MSGPACK_OBJECT_MAP);
    EXPECT_EQ(m->via.map.size, 2u);
    xo_args_free(a);
}

TEST(Codec, TypeMismatchNamesTheArgument)
{
    xo_args_t *a = xo_args("is", 1, "x");
    Decoded d(a);
    int i, j;
    EXPECT_EQ(xo_unpack(&d.obj, "ii", &i, &j), XO_EBADARGS);
    EXPECT_STREQ(xo_last_error(), "argument 2: expected int (32-bit), got string");
    EXPECT_EQ(xo_unpack(&d.obj, "i", &i), XO_EBADARGS); // too many values
    EXPECT_EQ(xo_unpack(&d.obj, "i*", &i), XO_OK);      // extra allowed
    xo_str_t str;
    EXPECT_EQ(xo_unpack(&d.obj, "isi", &i, &str, &j), XO_EBADARGS); // one value missing
    EXPECT_NE(std::string(xo_last_error()).find("expected 3 values, got 2"), std::string::npos) << xo_last_error();
    xo_args_free(a);
}

TEST(Codec, IntRangeIsChecked)
{
    xo_args_t *a = xo_args("l", (int64_t)1 << 40);
    Decoded d(a);
    int i;
    EXPECT_EQ(xo_unpack(&d.obj, "i", &i), XO_EBADARGS);
    xo_args_free(a);
}

TEST(Codec, OptionalValuesKeepDefaults)
{
    xo_args_t *a = xo_args("in", 1);
    Decoded d(a);
    int i = 0, j = 77, k = 88;
    ASSERT_EQ(xo_unpack(&d.obj, "i|ii", &i, &j, &k), XO_OK) << xo_last_error();
    EXPECT_EQ(i, 1);
    EXPECT_EQ(j, 77); // nil in an optional slot
    EXPECT_EQ(k, 88); // missing
    xo_args_free(a);
}

// Item 15 of issue 10: the arity message counts values, not the format's characters ('|' and '*' are markers).
TEST(Codec, ArityMessagesCountValues)
{
    xo_args_t *none = xo_args("");
    Decoded d(none);
    int i = 0, j = 0;
    EXPECT_EQ(xo_unpack(&d.obj, "i|i", &i, &j), XO_EBADARGS);
    EXPECT_STREQ(xo_last_error(), "arguments: expected 1 to 2 values, got 0");
    EXPECT_EQ(xo_unpack(&d.obj, "i", &i), XO_EBADARGS);
    EXPECT_STREQ(xo_last_error(), "arguments: expected 1 value, got 0");
    EXPECT_EQ(xo_unpack(&d.obj, "ii*", &i, &j), XO_EBADARGS);
    EXPECT_STREQ(xo_last_error(), "arguments: expected at least 2 values, got 0");
    EXPECT_EQ(xo_unpack(&d.obj, "[ii]|s", &i, &j, nullptr), XO_EBADARGS); // a group is one value
    EXPECT_STREQ(xo_last_error(), "arguments: expected 1 to 2 values, got 0");
    xo_args_free(none);
    xo_args_t *nested = xo_args("[i]i", 1, 2);
    Decoded n(nested);
    EXPECT_EQ(xo_unpack(&n.obj, "[ii|i]", &i, &j, &j), XO_EBADARGS);
    EXPECT_STREQ(xo_last_error(), "argument 1: expected 2 to 3 values, got 1");
    EXPECT_EQ(xo_unpack(&n.obj, "[i]", &i), XO_EBADARGS);
    EXPECT_STREQ(xo_last_error(), "arguments: expected at most 1 value, got 2");
    xo_args_free(nested);
}

// Item 14 of issue 10: a bad format is not "no arguments": the list says why, and consuming calls refuse it.
TEST(Codec, BadFormatsAreRefused)
{
    const char *bad[] = {"[i", "i]", "{s}", "q"};
    for (const char *fmt : bad) {
        xo_args_t *a = fmt[0] == 'i' ? xo_args(fmt, 1) : fmt[0] == '{' ? xo_args(fmt, "odd") : xo_args(fmt);
        ASSERT_NE(a, nullptr) << fmt;
        EXPECT_EQ(xo__args_refuse(a), XO_EINVAL) << fmt; // and frees it
        EXPECT_NE(std::string(xo_last_error()).find(std::string("xo_args(\"") + fmt + "\")"), std::string::npos)
            << xo_last_error();
    }
    EXPECT_EQ(xo__args_refuse(xo_args("q")), XO_EINVAL);
    EXPECT_STREQ(xo_last_error(), "xo_args(\"q\"): bad pack format character 'q'");
    EXPECT_EQ(xo__args_refuse(xo_args(nullptr)), XO_EINVAL);
    EXPECT_EQ(xo__args_refuse(nullptr), XO_OK); // no arguments
    xo_args_t *good = xo_args("i", 1);
    EXPECT_EQ(xo__args_refuse(good), XO_OK); // and keeps it
    xo_args_free(good);
}

TEST(Codec, LargeArgumentsLeaveTheInlineBuffer)
{
    std::string big(100000, 'z');
    xo_args_t *a = xo_args("sb", big.c_str(), big.data(), big.size());
    ASSERT_NE(a, nullptr);
    Decoded d(a);
    xo_str_t s;
    xo_bytes_t b;
    ASSERT_EQ(xo_unpack(&d.obj, "sb", &s, &b), XO_OK);
    EXPECT_EQ(s.len, big.size());
    EXPECT_EQ(b.len, big.size());
    xo_args_free(a);
}

// Lists past XO_WARM_MIN live in warm blocks (transport/warm_blocks.h) that later lists reuse: a list built from many small
// values past several MiB, a large 'b' after it, a settled 'B' of several MiB, one after another and freed in between,
// all decode to what was packed (a reused block must not leak old bytes into a new list, nor be freed twice: ASan).
TEST(Codec, LargeListsInReusedBlocksDecodeExactly)
{
    for (int round = 0; round < 3; round++) {
        const uint32_t n = 400000; // ~2 MiB of ints, grown value by value
        xo_args_t *many = xo_args_new(n);
        ASSERT_NE(many, nullptr);
        for (uint32_t i = 0; i < n; i++) ASSERT_EQ(0, msgpack_pack_uint32(xo_args_packer(many), i * 2654435761u + round));
        {
            Decoded d(many);
            ASSERT_EQ(MSGPACK_OBJECT_ARRAY, d.obj.type);
            ASSERT_EQ(n, d.obj.via.array.size);
            for (uint32_t i = 0; i < n; i += 9973)
                ASSERT_EQ((uint64_t)(uint32_t)(i * 2654435761u + round), d.obj.via.array.ptr[i].via.u64) << i;
        }
        xo_args_free(many);

        std::string big(3u << 20, static_cast<char>('a' + round));
        big[12345] = 'Q';
        xo_args_t *b = xo_args("ib", round, big.data(), big.size());
        xo_args_t *lent = xo_args("B", big.data(), big.size());
        ASSERT_EQ(XO_OK, xo__args_refuse(lent)); // settles: copied into a block of its own
        big.assign(big.size(), 'X');
        for (xo_args_t *a : {b, lent}) {
            Decoded d(a);
            xo_bytes_t got;
            int r = -1;
            if (a == b) ASSERT_EQ(XO_OK, xo_unpack(&d.obj, "ib", &r, &got));
            else ASSERT_EQ(XO_OK, xo_unpack(&d.obj, "b", &got));
            ASSERT_EQ(3u << 20, got.len);
            std::string want(3u << 20, static_cast<char>('a' + round));
            want[12345] = 'Q';
            EXPECT_TRUE(memcmp(want.data(), got.ptr, got.len) == 0) << "round " << round;
        }
        xo_args_free(b);
        xo_args_free(lent);
    }
}

// 'B' lends a binary: the argument list records where its bytes go instead of copying them, hands them out as
// pieces (what a remote send gathers), and copies them in when a consumer settles the list; after that the lender's
// buffer may change.
TEST(Codec, LentBinariesAreSplicedInAndCopiedWhenSettled)
{
    std::string big(70000, 'a'), small(5, 'q');
    xo_args_t *a = xo_args("iBsB", 7, big.data(), big.size(), "mid", small.data(), small.size());
    ASSERT_EQ(XO_OK, xo__args_refuse_keep_lent(a));
    xo_seg_t pcs[8];
    ASSERT_EQ(4u, xo__args_pieces(a, pcs, 8)); // [7, bin header | big | "mid", bin header | small
    EXPECT_EQ(big.data(), pcs[1].data) << "lent bytes were copied";
    EXPECT_EQ(big.size(), pcs[1].len);
    EXPECT_EQ(small.data(), pcs[3].data);
    EXPECT_EQ(0u, xo__args_pieces(a, pcs, 3)) << "more pieces than room must say so, not truncate";
    ASSERT_EQ(XO_OK, xo__args_settle(a));
    EXPECT_EQ(0u, xo__args_pieces(a, pcs, 8));
    big.assign(big.size(), 'X');
    small.assign(small.size(), 'Y');
    Decoded d(a);
    int i = 0;
    xo_bytes_t b1, b2;
    xo_str_t s;
    ASSERT_EQ(XO_OK, xo_unpack(&d.obj, "ibsb", &i, &b1, &s, &b2));
    EXPECT_EQ(7, i);
    EXPECT_EQ(std::string(70000, 'a'), std::string(static_cast<const char *>(b1.ptr), b1.len));
    EXPECT_EQ("mid", std::string(s.ptr, s.len));
    EXPECT_EQ("qqqqq", std::string(static_cast<const char *>(b2.ptr), b2.len));
    xo_args_free(a);

    // xo__args_refuse, which every in-process consumer asks, settles too; and an empty lent binary is just a header.
    xo_args_t *e = xo_args("BB", big.data(), (size_t)0, small.data(), small.size());
    ASSERT_EQ(XO_OK, xo__args_refuse(e));
    EXPECT_EQ(0u, xo__args_pieces(e, pcs, 8));
    small.assign(small.size(), 'Z');
    Decoded de(e);
    ASSERT_EQ(XO_OK, xo_unpack(&de.obj, "bb", &b1, &b2));
    EXPECT_EQ(0u, b1.len);
    EXPECT_EQ("YYYYY", std::string(static_cast<const char *>(b2.ptr), b2.len));
    xo_args_free(e);
}

TEST(Codec, MalformedBytesAreAProtocolError)
{
    const char truncated[] = {(char)0x92, 0x01}; // array of 2 with one element
    msgpack_zone z;
    msgpack_zone_init(&z, 64);
    msgpack_object o;
    EXPECT_EQ(xo__decode(truncated, sizeof truncated, &z, &o), XO_EPROTO);
    // A few bytes announcing 2^32 - 1 elements must be refused before anything is allocated for them.
    const char huge[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xff, 0x01};
    EXPECT_EQ(xo__decode(huge, sizeof huge, &z, &o), XO_EPROTO);
    const char huge_map[] = {(char)0xdf, 0x7f, (char)0xff, (char)0xff, (char)0xff};
    EXPECT_EQ(xo__decode(huge_map, sizeof huge_map, &z, &o), XO_EPROTO);
    std::string deep(100, (char)0x91); // 100 nested arrays of one
    deep.push_back(0x01);
    EXPECT_EQ(xo__decode(deep.data(), deep.size(), &z, &o), XO_EPROTO);
    std::string ok_nest(10, (char)0x91);
    ok_nest.push_back(0x01);
    EXPECT_EQ(xo__decode(ok_nest.data(), ok_nest.size(), &z, &o), XO_OK);
    const char trailing[] = {0x01, 0x02};
    EXPECT_EQ(xo__decode(trailing, sizeof trailing, &z, &o), XO_EPROTO);
    msgpack_zone_destroy(&z);
}

TEST(Codec, ResultsDecodeLazily)
{
    xo_args_t *a = xo_args("[is]", 3, "x"); // an array with one value: the array
    size_t len;
    const char *data = xo__args_data(a, &len);
    // skip the outer 1-element array header (0x91) to get the value itself
    xo_result_t *r = xo__result_from_bytes(data + 1, len - 1);
    int i;
    xo_str_t s;
    ASSERT_EQ(xo_result_unpack(r, "[is]", &i, &s), XO_OK) << xo_last_error();
    EXPECT_EQ(i, 3);
    xo_result_free(r);
    xo_args_free(a);
    xo_result_t *nil = xo__result_from_bytes(nullptr, 0);
    EXPECT_EQ(xo_result_value(nil)->type, MSGPACK_OBJECT_NIL);
    xo_result_free(nil);
}

TEST(Status, EveryStatusHasANameAndAMessage)
{
#define CHECK_STATUS(name, value, msg)                                     \
    EXPECT_STREQ(xo_status_name(XO_##name), "XO_" #name);                 \
    EXPECT_STREQ(xo_strerror(XO_##name), msg);
    XO_STATUS_MAP(CHECK_STATUS)
#undef CHECK_STATUS
    EXPECT_STREQ(xo_status_name((xo_status_t)12345), "XO_UNKNOWN");
    EXPECT_STREQ(xo_strerror((xo_status_t)12345), "unknown status");
}

} // namespace
