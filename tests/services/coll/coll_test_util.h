// Helpers of the collectives suites: run one operation on every member of a group at once, and CPU references.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/runtime/pool_fixture.h"
#include "xoscar/collective.h"

namespace coll_test {

using Bytes = std::vector<unsigned char>;

struct Outcome {
    xo_status_t st = XO_OK;
    std::string error, backend, algorithm;
    Bytes out;
};

struct Op {
    std::string op = "allreduce";
    xo_dtype_t dtype = XO_DTYPE_INT64;
    xo_reduce_op_t rop = XO_REDUCE_SUM;
    int root = 0;
    int repeat = 1;
    int64_t timeout_ms = 10000;
    std::string backend = "auto";
};

template <typename T> Bytes to_bytes(const std::vector<T> &v)
{
    Bytes b(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
}

template <typename T> std::vector<T> from_bytes(const Bytes &b)
{
    std::vector<T> v(b.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), b.data(), b.size());
    return v;
}

// Sends run to every member at once (each rank's input and operation: ops[r]), then collects the outcomes by rank.
std::vector<Outcome> run_group_each(const std::vector<xo_ref_t *> &members, const std::string &name, const char *rdv,
                                    const std::vector<Op> &ops, const std::vector<Bytes> &inputs, int size = -1)
{
    if (size < 0) size = (int)members.size();
    std::vector<xo_future_t *> fs(members.size(), nullptr);
    const Op &op = ops[0]; // the timeout below
    for (size_t r = 0; r < members.size(); r++) {
        const Op &o = ops[r];
        xo_args_t *a = xo_args("siisssiiiilb", name.c_str(), (int)r, size, rdv, o.backend.c_str(), o.op.c_str(),
                               (int)o.dtype, (int)o.rop, o.root, o.repeat, o.timeout_ms, inputs[r].data(),
                               inputs[r].size());
        EXPECT_EQ(xo_send(members[r], "run", a, &fs[r]), XO_OK) << xo_last_error();
    }
    std::vector<Outcome> outs(members.size());
    for (size_t r = 0; r < members.size(); r++) {
        xo_result_t *res = nullptr;
        outs[r].st = xo_future_wait(fs[r], op.timeout_ms * 3 + 10000, &res);
        if (outs[r].st == XO_OK) {
            xo_str_t be, algo;
            xo_bytes_t out;
            EXPECT_EQ(xo_result_unpack(res, "[sbs]", &be, &out, &algo), XO_OK);
            outs[r].backend = to_string(be);
            outs[r].algorithm = to_string(algo);
            const auto *p = static_cast<const unsigned char *>(out.ptr);
            outs[r].out.assign(p, p + out.len);
            xo_result_free(res);
        } else {
            outs[r].error = xo_last_error();
        }
        xo_future_free(fs[r]);
    }
    return outs;
}

// The same operation on every member.
std::vector<Outcome> run_group(const std::vector<xo_ref_t *> &members, const std::string &name, const char *rdv,
                               const Op &op, const std::vector<Bytes> &inputs, int size = -1)
{
    return run_group_each(members, name, rdv, std::vector<Op>(members.size(), op), inputs, size);
}

// Rank r's input: count values that differ by rank and position.
std::vector<int64_t> input_i64(int r, size_t count)
{
    std::vector<int64_t> v(count);
    for (size_t i = 0; i < count; i++) v[i] = (int64_t)(r + 1) * 1000 + (int64_t)(i % 97) - 40;
    return v;
}

// Every member got the sum of every member's input_i64, by the given algorithm (any when algorithm is empty).
void expect_allreduce_sum(const std::vector<Outcome> &outs, size_t count, const std::string &algorithm = "")
{
    int n = (int)outs.size();
    std::vector<int64_t> ref(count, 0);
    for (int r = 0; r < n; r++) {
        auto in = input_i64(r, count);
        for (size_t i = 0; i < count; i++) ref[i] += in[i];
    }
    for (int r = 0; r < n; r++) {
        ASSERT_EQ(outs[r].st, XO_OK) << "rank " << r << ": " << outs[r].error;
        EXPECT_EQ(outs[r].backend, "host");
        if (!algorithm.empty()) {
            EXPECT_EQ(outs[r].algorithm, algorithm) << "rank " << r;
        }
        EXPECT_EQ(from_bytes<int64_t>(outs[r].out), ref) << "rank " << r;
    }
}

// ---- CPU references of the rooted operations and all-to-all (any data type) ----

template <typename T> T combine(T a, T b, xo_reduce_op_t op)
{
    switch (op) {
    case XO_REDUCE_SUM: return (T)(a + b);
    case XO_REDUCE_PROD: return (T)(a * b);
    case XO_REDUCE_MIN: return b < a ? b : a;
    case XO_REDUCE_MAX: return b > a ? b : a;
    }
    return a;
}

// Rank r's count values of type T: small integers (-4..4, or 1..9 unsigned), so that float sums and products are
// exact in any order and 5 members' products stay in range.
template <typename T> Bytes input_of(int r, size_t count)
{
    std::vector<T> v(count);
    for (size_t i = 0; i < count; i++) {
        int x = (int)(((size_t)r * 7 + i * 5) % 9);
        v[i] = (T)((T)-1 < (T)0 ? x - 4 : x + 1);
    }
    return to_bytes(v);
}

template <typename T> Bytes reduce_of(const std::vector<Bytes> &in, xo_reduce_op_t op)
{
    auto acc = from_bytes<T>(in[0]);
    for (size_t r = 1; r < in.size(); r++) {
        auto v = from_bytes<T>(in[r]);
        for (size_t i = 0; i < acc.size(); i++) acc[i] = combine(acc[i], v[i], op);
    }
    return to_bytes(acc);
}

#define DISPATCH(dt, F, ...)                                                                                          \
    switch (dt) {                                                                                                     \
    case XO_DTYPE_INT8: return F<int8_t>(__VA_ARGS__);                                                                \
    case XO_DTYPE_UINT8: return F<uint8_t>(__VA_ARGS__);                                                              \
    case XO_DTYPE_INT32: return F<int32_t>(__VA_ARGS__);                                                              \
    case XO_DTYPE_UINT32: return F<uint32_t>(__VA_ARGS__);                                                            \
    case XO_DTYPE_INT64: return F<int64_t>(__VA_ARGS__);                                                              \
    case XO_DTYPE_UINT64: return F<uint64_t>(__VA_ARGS__);                                                            \
    case XO_DTYPE_FLOAT32: return F<float>(__VA_ARGS__);                                                              \
    case XO_DTYPE_FLOAT64: return F<double>(__VA_ARGS__);                                                             \
    }                                                                                                                 \
    return {};

Bytes make_input(xo_dtype_t dt, int r, size_t count) { DISPATCH(dt, input_of, r, count) }
Bytes reduce_ref(xo_dtype_t dt, const std::vector<Bytes> &in, xo_reduce_op_t op) { DISPATCH(dt, reduce_of, in, op) }

Bytes slice(const Bytes &b, size_t block, size_t i)
{
    return Bytes(b.begin() + (long)(block * i), b.begin() + (long)(block * (i + 1)));
}

Bytes concat(const std::vector<Bytes> &parts)
{
    Bytes out;
    for (const auto &p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// What member r must return for op (empty where it returns nothing), from every member's input.
Bytes expected(const std::string &op, const std::vector<Bytes> &in, xo_dtype_t dt, xo_reduce_op_t rop, int root, int r)
{
    size_t n = in.size(), block = in[0].size() / n;
    bool is_root = r == root;
    if (op.rfind("reduce", 0) == 0) return is_root ? reduce_ref(dt, in, rop) : Bytes{};
    if (op.rfind("gather", 0) == 0) return is_root ? concat(in) : Bytes{};
    if (op.rfind("scatter", 0) == 0) return slice(in[(size_t)root], block, (size_t)r);
    std::vector<Bytes> parts; // alltoall: block r of every member's input
    for (size_t i = 0; i < n; i++) parts.push_back(slice(in[i], block, (size_t)r));
    return concat(parts);
}

} // namespace coll_test
