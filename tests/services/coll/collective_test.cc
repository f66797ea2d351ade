// Collectives (include/xoscar/collective.h): allreduce, broadcast and allgather among members in one pool and in
// sub pool processes, checked against a CPU reference; buffers on the host device backend and in host memory;
// repeated operations, large buffers in pieces, empty ones; and the errors: members missing, disagreeing on count,
// size or backend, a member leaving mid-way, calls outside a method, NCCL where it cannot run.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "services/coll/coll_member.h"
#include "services/coll/coll_test_util.h"
#include "tests/runtime/pool_fixture.h"
#include "xoscar/collective.h"
#include "xoscar/gpu.h"

namespace {

using namespace coll_test;
// ---- members in one pool ----

class CollInPool : public ::testing::Test {
  protected:
    void start(const char *device = nullptr)
    {
        xo_pool_config_t cfg{};
        cfg.n_threads = 2;
        cfg.device = device;
        cfg.device_capacity = 256u << 20;
        ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
        addr = xo_pool_address(pool);
    }
    void TearDown() override
    {
        for (auto *m : members) xo_ref_free(m);
        if (pool) xo_pool_stop(pool);
    }
    void make_members(int n)
    {
        for (int i = 0; i < n; i++) {
            xo_ref_t *ref = nullptr;
            ASSERT_EQ(xo_create_actor(&xo_test_coll_member_class, nullptr, addr.c_str(), nullptr, &ref), XO_OK)
                << xo_last_error();
            members.push_back(ref);
        }
    }
    uint64_t mem_used()
    {
        xo_result_t *r = nullptr;
        uint64_t used = 0;
        EXPECT_EQ(xo_call(members[0], "mem_used", nullptr, 5000, &r), XO_OK);
        xo_result_unpack(r, "u", &used);
        xo_result_free(r);
        return used;
    }
    xo_pool_t *pool = nullptr;
    std::string addr;
    std::vector<xo_ref_t *> members;
};

TEST_F(CollInPool, AllreduceSumMatchesCpuForGroupSizesOneToFive)
{
    start();
    make_members(5);
    for (int n = 1; n <= 5; n++) {
        std::vector<xo_ref_t *> group(members.begin(), members.begin() + n);
        std::vector<Bytes> inputs;
        for (int r = 0; r < n; r++) inputs.push_back(to_bytes(input_i64(r, 103)));
        expect_allreduce_sum(run_group(group, "sum" + std::to_string(n), addr.c_str(), Op{}, inputs), 103,
                             n > 1 ? "direct" : "");
    }
}

// Past 64 KiB in all, allreduce takes the ring (reduce-scatter + allgather) instead of the direct exchange, where the
// members' buffers are host memory (no device: nothing to map).
TEST_F(CollInPool, RingAllreduceMatchesCpuForGroupSizesTwoToFiveWithUnevenParts)
{
    start();
    make_members(5);
    const size_t count = 20011; // 160 KB per member: the ring for every size; not a multiple of any size
    for (int n = 2; n <= 5; n++) {
        std::vector<xo_ref_t *> group(members.begin(), members.begin() + n);
        std::vector<Bytes> inputs;
        for (int r = 0; r < n; r++) inputs.push_back(to_bytes(input_i64(r, count)));
        Op op;
        op.repeat = 3;
        expect_allreduce_sum(run_group(group, "ring" + std::to_string(n), addr.c_str(), op, inputs), count, "ring");
    }
}

// The same sizes on host devices: members read each other's buffers through device IPC, also in place.
TEST_F(CollInPool, SharedMemoryAllreduceMatchesCpuInAndOutOfPlace)
{
    start("host:0");
    make_members(5);
    const size_t count = 20011;
    for (int n = 2; n <= 5; n++) {
        std::vector<xo_ref_t *> group(members.begin(), members.begin() + n);
        std::vector<Bytes> inputs;
        for (int r = 0; r < n; r++) inputs.push_back(to_bytes(input_i64(r, count)));
        Op op;
        op.repeat = 3;
        expect_allreduce_sum(run_group(group, "shm" + std::to_string(n), addr.c_str(), op, inputs), count, "shm");
        op.op = "allreduce_inplace";
        expect_allreduce_sum(run_group(group, "shm-in" + std::to_string(n), addr.c_str(), op, inputs), count, "shm");
    }
    EXPECT_EQ(mem_used(), 0u);
}

TEST_F(CollInPool, AllreduceOnTheHostDeviceLeavesNoDeviceMemoryInUse)
{
    start("host:0");
    make_members(3);
    std::vector<Bytes> inputs;
    for (int r = 0; r < 3; r++) inputs.push_back(to_bytes(input_i64(r, 1000)));
    expect_allreduce_sum(run_group(members, "dev", addr.c_str(), Op{}, inputs), 1000);
    EXPECT_EQ(mem_used(), 0u);
}

TEST_F(CollInPool, AllreduceMinMaxProdOnFloatsAndInts)
{
    start("host:0");
    make_members(3);
    const size_t count = 17;
    struct Case {
        xo_reduce_op_t op;
        double (*f)(double, double);
    } cases[] = {
        {XO_REDUCE_MIN, [](double a, double b) { return a < b ? a : b; }},
        {XO_REDUCE_MAX, [](double a, double b) { return a > b ? a : b; }},
        {XO_REDUCE_PROD, [](double a, double b) { return a * b; }},
        {XO_REDUCE_SUM, [](double a, double b) { return a + b; }},
    };
    for (const auto &c : cases) {
        std::vector<Bytes> in_d, in_i;
        std::vector<std::vector<double>> vd;
        for (int r = 0; r < 3; r++) {
            std::vector<double> d(count);
            std::vector<int32_t> i32(count);
            for (size_t i = 0; i < count; i++) {
                d[i] = (double)((int)(i * 7 + (size_t)r * 13) % 11) - 5.5;
                i32[i] = (int32_t)d[i] * 3;
            }
            vd.push_back(d);
            in_d.push_back(to_bytes(d));
            in_i.push_back(to_bytes(i32));
        }
        Op op;
        op.rop = c.op;
        op.dtype = XO_DTYPE_FLOAT64;
        auto outs = run_group(members, "f64-" + std::to_string(c.op), addr.c_str(), op, in_d);
        op.dtype = XO_DTYPE_INT32;
        auto outs_i = run_group(members, "i32-" + std::to_string(c.op), addr.c_str(), op, in_i);
        for (size_t i = 0; i < count; i++) {
            double ref = vd[0][i];
            int32_t ref_i = (int32_t)vd[0][i] * 3;
            for (int r = 1; r < 3; r++) {
                ref = c.f(ref, vd[r][i]);
                ref_i = (int32_t)c.f(ref_i, (int32_t)vd[r][i] * 3);
            }
            for (int r = 0; r < 3; r++) {
                ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
                ASSERT_EQ(outs_i[r].st, XO_OK) << outs_i[r].error;
                EXPECT_DOUBLE_EQ(from_bytes<double>(outs[r].out)[i], ref) << "op " << c.op << " element " << i;
                EXPECT_EQ(from_bytes<int32_t>(outs_i[r].out)[i], ref_i) << "op " << c.op << " element " << i;
            }
        }
    }
}

TEST_F(CollInPool, BroadcastFromEveryRootOfFiveMembers)
{
    start("host:0");
    make_members(5);
    for (int root = 0; root < 5; root++) {
        std::vector<Bytes> inputs;
        for (int r = 0; r < 5; r++) inputs.push_back(to_bytes(input_i64(r, 33)));
        Op op;
        op.op = "broadcast";
        op.root = root;
        auto outs = run_group(members, "bcast" + std::to_string(root), addr.c_str(), op, inputs);
        for (int r = 0; r < 5; r++) {
            ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
            EXPECT_EQ(from_bytes<int64_t>(outs[r].out), input_i64(root, 33)) << "root " << root << " rank " << r;
        }
    }
}

TEST_F(CollInPool, AllgatherPutsEveryMembersBlockInRankOrder)
{
    start();
    make_members(4);
    std::vector<Bytes> inputs;
    std::vector<int64_t> ref;
    for (int r = 0; r < 4; r++) {
        auto v = input_i64(r, 9);
        inputs.push_back(to_bytes(v));
        ref.insert(ref.end(), v.begin(), v.end());
    }
    Op op;
    op.op = "allgather";
    auto outs = run_group(members, "gather", addr.c_str(), op, inputs);
    for (int r = 0; r < 4; r++) {
        ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
        EXPECT_EQ(from_bytes<int64_t>(outs[r].out), ref) << "rank " << r;
    }
}

// Member r gets block r of the sum: small blocks directly, large ones by the ring (host memory) or by reading the
// peers' buffers (host devices).
TEST_F(CollInPool, ReduceScatterGivesEachMemberItsBlockOfTheSum)
{
    struct Case {
        const char *device;
        size_t block;
        const char *algorithm;
    } cases[] = {{nullptr, 50, "direct"}, {nullptr, 9001, "ring"}, {"host:0", 9001, "shm"}};
    for (const auto &c : cases) {
        start(c.device);
        make_members(4);
        for (int n = 2; n <= 4; n++) {
            std::vector<xo_ref_t *> group(members.begin(), members.begin() + n);
            std::vector<Bytes> inputs;
            std::vector<int64_t> sum(c.block * (size_t)n, 0);
            for (int r = 0; r < n; r++) {
                auto v = input_i64(r, c.block * (size_t)n);
                for (size_t i = 0; i < v.size(); i++) sum[i] += v[i];
                inputs.push_back(to_bytes(v));
            }
            Op op;
            op.op = "reduce_scatter";
            op.repeat = 2;
            auto outs = run_group(group, std::string("rs") + c.algorithm + std::to_string(n), addr.c_str(), op, inputs);
            for (int r = 0; r < n; r++) {
                ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
                std::vector<int64_t> want(sum.begin() + (long)(c.block * (size_t)r),
                                          sum.begin() + (long)(c.block * (size_t)(r + 1)));
                EXPECT_EQ(from_bytes<int64_t>(outs[r].out), want) << c.algorithm << " n=" << n << " rank " << r;
                EXPECT_EQ(outs[r].algorithm, c.algorithm);
            }
        }
        for (auto *m : members) xo_ref_free(m);
        members.clear();
        xo_pool_stop(pool);
        pool = nullptr;
    }
}

TEST_F(CollInPool, BarrierReturnsOnEveryMemberAndAMissingOneTimesOut)
{
    start();
    make_members(3);
    std::vector<Bytes> inputs(3, to_bytes(input_i64(0, 1)));
    Op op;
    op.op = "barrier";
    op.repeat = 10;
    for (auto &o : run_group(members, "barrier", addr.c_str(), op, inputs)) EXPECT_EQ(o.st, XO_OK) << o.error;
    // Ranks 0 and 1 reach the barrier, rank 2 joins and leaves without it: the others time out naming a rank.
    std::vector<xo_future_t *> fs(3);
    for (int r = 0; r < 3; r++)
        ASSERT_EQ(xo_send(members[r], "run",
                          xo_args("siisssiiiilb", "barrier2", r, 3, addr.c_str(), "auto", r == 2 ? "join" : "barrier",
                                  (int)XO_DTYPE_UINT8, 0, 0, 1, (int64_t)1000, inputs[r].data(), inputs[r].size()),
                          &fs[r]),
                  XO_OK);
    EXPECT_EQ(xo_future_wait(fs[2], 10000, nullptr), XO_OK) << xo_last_error();
    for (int r = 0; r < 2; r++) {
        EXPECT_NE(xo_future_wait(fs[r], 10000, nullptr), XO_OK);
        EXPECT_NE(std::string(xo_last_error()).find("rank"), std::string::npos) << xo_last_error();
    }
    for (auto *f : fs) xo_future_free(f);
}

TEST_F(CollInPool, RepeatedOperationsOnOneGroupStayInStep)
{
    start();
    make_members(3);
    std::vector<Bytes> inputs;
    for (int r = 0; r < 3; r++) inputs.push_back(to_bytes(input_i64(r, 50)));
    Op op;
    op.repeat = 20;
    expect_allreduce_sum(run_group(members, "again", addr.c_str(), op, inputs), 50);
}

TEST_F(CollInPool, LargeBufferCrossesInPiecesAndCountZeroIsANoOp)
{
    start("host:0");
    make_members(3);
    const size_t count = (size_t)3 << 20; // 24 MiB of int64 per member: 8 MiB parts, many pieces each
    std::vector<Bytes> inputs;
    for (int r = 0; r < 3; r++) inputs.push_back(to_bytes(input_i64(r, count)));
    expect_allreduce_sum(run_group(members, "large", addr.c_str(), Op{}, inputs), count);
    std::vector<Bytes> empty(3);
    auto outs = run_group(members, "empty", addr.c_str(), Op{}, empty);
    for (auto &o : outs) EXPECT_EQ(o.st, XO_OK) << o.error;
    EXPECT_EQ(mem_used(), 0u);
}

TEST_F(CollInPool, AGroupNameCanBeUsedAgainAfterEveryMemberLeft)
{
    start();
    make_members(2);
    std::vector<Bytes> inputs{to_bytes(input_i64(0, 4)), to_bytes(input_i64(1, 4))};
    for (int round = 0; round < 3; round++)
        expect_allreduce_sum(run_group(members, "reused", addr.c_str(), Op{}, inputs), 4);
}

TEST_F(CollInPool, AMissingMemberFailsTheJoinNamingHowManyJoined)
{
    start();
    make_members(2);
    Op op;
    op.timeout_ms = 500;
    std::vector<Bytes> inputs{to_bytes(input_i64(0, 4)), to_bytes(input_i64(1, 4))};
    auto outs = run_group(members, "short", addr.c_str(), op, inputs, 3); // size 3, two members
    for (auto &o : outs) {
        EXPECT_EQ(o.st, XO_ETIMEDOUT);
        EXPECT_NE(o.error.find("of 3 members joined"), std::string::npos) << o.error;
    }
}

TEST_F(CollInPool, MembersThatDisagreeOnCountFailWithATextThatSaysSo)
{
    start();
    make_members(2);
    Op op;
    op.timeout_ms = 2000;
    std::vector<Bytes> inputs{to_bytes(input_i64(0, 10)), to_bytes(input_i64(1, 12))};
    auto outs = run_group(members, "count", addr.c_str(), op, inputs);
    bool said = false;
    for (auto &o : outs) {
        EXPECT_NE(o.st, XO_OK);
        said |= o.error.find("same count") != std::string::npos;
    }
    EXPECT_TRUE(said) << outs[0].error << " / " << outs[1].error;
}

TEST_F(CollInPool, MembersThatAskForDifferentBackendsAllFail)
{
    start();
    make_members(2);
    std::vector<Bytes> inputs{to_bytes(input_i64(0, 4)), to_bytes(input_i64(1, 4))};
    std::vector<xo_future_t *> fs(2);
    const char *backends[] = {"host", "auto"};
    for (int r = 0; r < 2; r++)
        ASSERT_EQ(xo_send(members[r], "run",
                          xo_args("siisssiiiilb", "mixed", r, 2, addr.c_str(), backends[r], "allreduce",
                                  (int)XO_DTYPE_INT64, 0, 0, 1, (int64_t)5000, inputs[r].data(), inputs[r].size()),
                          &fs[r]),
                  XO_OK);
    for (int r = 0; r < 2; r++) {
        EXPECT_EQ(xo_future_wait(fs[r], 20000, nullptr), XO_EINVAL);
        EXPECT_NE(std::string(xo_last_error()).find("asked for backend"), std::string::npos) << xo_last_error();
        xo_future_free(fs[r]);
    }
}

TEST_F(CollInPool, AMemberThatLeavesMidWayFailsTheOthersInsteadOfHangingThem)
{
    start();
    make_members(3);
    std::vector<Bytes> inputs;
    for (int r = 0; r < 3; r++) inputs.push_back(to_bytes(input_i64(r, 30)));
    std::vector<xo_future_t *> fs(3);
    for (int r = 0; r < 3; r++) {
        const char *op = r == 2 ? "join" : "allreduce"; // rank 2 joins, then leaves without the allreduce
        ASSERT_EQ(xo_send(members[r], "run",
                          xo_args("siisssiiiilb", "leaver", r, 3, addr.c_str(), "auto", op, (int)XO_DTYPE_INT64, 0, 0,
                                  1, (int64_t)1500, inputs[r].data(), inputs[r].size()),
                          &fs[r]),
                  XO_OK);
    }
    double t0 = now_ms();
    EXPECT_EQ(xo_future_wait(fs[2], 10000, nullptr), XO_OK) << xo_last_error();
    for (int r = 0; r < 2; r++) {
        xo_status_t st = xo_future_wait(fs[r], 10000, nullptr);
        EXPECT_TRUE(st == XO_ETIMEDOUT || st == XO_ENOACTOR) << r << ": " << xo_status_name(st) << " " << xo_last_error();
        EXPECT_NE(std::string(xo_last_error()).find("rank"), std::string::npos) << xo_last_error();
    }
    EXPECT_LT(now_ms() - t0, 6000.0);
    for (auto *f : fs) xo_future_free(f);
}

TEST(CollOutsideMethods, InitOutsideAnActorMethodIsRefused)
{
    xo_coll_config_t cfg{};
    cfg.name = "x";
    cfg.size = 1;
    cfg.rendezvous = "inproc://nowhere";
    xo_coll_t *g = nullptr;
    EXPECT_EQ(xo_coll_init(&cfg, &g), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("inside an actor method"), std::string::npos) << xo_last_error();
    cfg.rank = 1;
    EXPECT_EQ(xo_coll_init(&cfg, &g), XO_EINVAL);
    cfg.rank = 0;
    cfg.backend = "mpi";
    EXPECT_EQ(xo_coll_init(&cfg, &g), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("unknown backend"), std::string::npos);
    EXPECT_EQ(xo_coll_allreduce(nullptr, nullptr, nullptr, 0, XO_DTYPE_INT8, XO_REDUCE_SUM), XO_EINVAL);
}

TEST_F(CollInPool, NcclWhereItCannotRunIsNotSupported)
{
    start("host:0");
    make_members(1);
    Op op;
    op.backend = "nccl";
    std::vector<Bytes> inputs{to_bytes(input_i64(0, 4))};
    auto outs = run_group(members, "nccl-on-host", addr.c_str(), op, inputs);
    EXPECT_EQ(outs[0].st, XO_ENOTSUP) << outs[0].error;
}

// ---- NCCL: a one-rank communicator runs on any machine with one GPU ----

// Every operation: with one rank each output is the input (reduce, gather, scatter, alltoall too, and their in-place
// forms), which still runs NCCL's calls (ncclReduce; ncclGroupStart/End around no transfers plus the own block's copy).
TEST(CollNccl, OneRankEveryOperationOnCuda)
{
    const xo_device_ops_t *cuda = xo_device_backend_find("cuda");
    if (!cuda) GTEST_SKIP() << "this build has no CUDA backend";
    size_t n = 0;
    if (xo_device_discover(cuda, nullptr, 0, &n) != XO_OK || n == 0)
        GTEST_SKIP() << "no GPU here: " << xo_last_error();
    xo_pool_config_t cfg{};
    cfg.n_threads = 2;
    cfg.device = "cuda:0";
    xo_pool_t *pool = nullptr;
    ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
    xo_ref_t *m = nullptr;
    ASSERT_EQ(xo_create_actor(&xo_test_coll_member_class, nullptr, xo_pool_address(pool), nullptr, &m), XO_OK);
    for (const char *what : {"allreduce", "broadcast", "allgather", "reduce_scatter", "reduce", "reduce_inplace",
                             "gather", "gather_inplace", "scatter", "scatter_inplace", "alltoall"}) {
        Op op;
        op.op = what;
        op.backend = "nccl";
        std::vector<Bytes> inputs{to_bytes(input_i64(0, 1000))};
        auto outs = run_group({m}, std::string("nccl-") + what, xo_pool_address(pool), op, inputs);
        if (outs[0].st == XO_ENOTSUP) GTEST_SKIP() << outs[0].error;
        ASSERT_EQ(outs[0].st, XO_OK) << what << ": " << outs[0].error;
        EXPECT_EQ(outs[0].backend, "nccl");
        EXPECT_EQ(outs[0].algorithm, "nccl") << what;
        EXPECT_EQ(from_bytes<int64_t>(outs[0].out), input_i64(0, 1000)) << what;
    }
    xo_ref_free(m);
    xo_pool_stop(pool);
}

} // namespace
