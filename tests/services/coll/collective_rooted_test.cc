// Collectives with a root (reduce, gather, scatter) and all-to-all, among members in one pool: group sizes 1 to 5,
// every root, small buffers and buffers past one 192 KiB piece, several data types and reductions, in place, over
// messages (host memory) and on host devices (staged small ones, shared memory for large ones), checked against a CPU
// reference; and the errors: a bad root, members that disagree on count, a member that leaves.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "services/coll/coll_member.h"
#include "services/coll/coll_test_util.h"
#include "tests/runtime/pool_fixture.h"
#include "xoscar/collective.h"

namespace {

using namespace coll_test;

// ---- the fixture ----

class CollRooted : public ::testing::Test {
  protected:
    void start(const char *device)
    {
        stop();
        xo_pool_config_t cfg{};
        cfg.n_threads = 2;
        cfg.device = device;
        cfg.device_capacity = 256u << 20;
        ASSERT_EQ(xo_pool_start(&cfg, &pool), XO_OK) << xo_last_error();
        addr = xo_pool_address(pool);
        for (int i = 0; i < 5; i++) {
            xo_ref_t *ref = nullptr;
            ASSERT_EQ(xo_create_actor(&xo_test_coll_member_class, nullptr, addr.c_str(), nullptr, &ref), XO_OK)
                << xo_last_error();
            members.push_back(ref);
        }
    }
    void stop()
    {
        for (auto *m : members) xo_ref_free(m);
        members.clear();
        if (pool) xo_pool_stop(pool);
        pool = nullptr;
    }
    void TearDown() override { stop(); }
    uint64_t mem_used()
    {
        xo_result_t *r = nullptr;
        uint64_t used = 0;
        EXPECT_EQ(xo_call(members[0], "mem_used", nullptr, 5000, &r), XO_OK);
        xo_result_unpack(r, "u", &used);
        xo_result_free(r);
        return used;
    }

    // Runs op on the first n members (each with make_input(dt, r, elems)) and checks every member's output against
    // the reference, and (n > 1) the algorithm.
    void check(const std::string &op, int n, int root, size_t elems, xo_dtype_t dt, xo_reduce_op_t rop,
               const std::string &algorithm)
    {
        std::vector<xo_ref_t *> group(members.begin(), members.begin() + n);
        std::vector<Bytes> in;
        for (int r = 0; r < n; r++) in.push_back(make_input(dt, r, elems));
        Op o;
        o.op = op;
        o.dtype = dt;
        o.rop = rop;
        o.root = root;
        std::string name = op + "." + std::to_string(n) + "." + std::to_string(root) + "." + std::to_string(elems) +
                           "." + std::to_string(dt) + "." + std::to_string(rop);
        auto outs = run_group(group, name, addr.c_str(), o, in);
        for (int r = 0; r < n; r++) {
            SCOPED_TRACE(name + " rank " + std::to_string(r));
            ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
            EXPECT_EQ(outs[r].out, expected(op, in, dt, rop, root, r));
            if (n > 1 && !algorithm.empty()) {
                EXPECT_EQ(outs[r].algorithm, algorithm);
            }
        }
    }

    xo_pool_t *pool = nullptr;
    std::string addr;
    std::vector<xo_ref_t *> members;
};

const size_t kSmall = 37;    // int64: 296 B, the tree and single messages
const size_t kLarge = 30011; // int64: 240 KB per member or block, past one 192 KiB piece; odd, so uneven ring parts

// Over messages (host memory) and on host devices (large: shared memory; small: staged through host memory).
struct Where {
    const char *device;
    bool shm; // large operations read and write the peers' buffers
};
const Where kWhere[] = {{nullptr, false}, {"host:0", true}};

TEST_F(CollRooted, ReduceSumToEveryRootOfGroupsOfOneToFive)
{
    for (const auto &w : kWhere) {
        start(w.device);
        for (int n = 1; n <= 5; n++)
            for (int root = 0; root < n; root++) {
                check("reduce", n, root, kSmall, XO_DTYPE_INT64, XO_REDUCE_SUM, "tree");
                check("reduce", n, root, kLarge, XO_DTYPE_INT64, XO_REDUCE_SUM, w.shm ? "shm" : "ring");
            }
        if (w.device) {
            EXPECT_EQ(mem_used(), 0u);
        }
    }
}

TEST_F(CollRooted, ReduceEveryDataTypeAndOperation)
{
    const xo_dtype_t types[] = {XO_DTYPE_INT8,  XO_DTYPE_UINT8,  XO_DTYPE_INT32,   XO_DTYPE_UINT32,
                                XO_DTYPE_INT64, XO_DTYPE_UINT64, XO_DTYPE_FLOAT32, XO_DTYPE_FLOAT64};
    const xo_reduce_op_t ops[] = {XO_REDUCE_SUM, XO_REDUCE_PROD, XO_REDUCE_MIN, XO_REDUCE_MAX};
    start(nullptr);
    for (auto dt : types)
        for (auto op : ops) check("reduce", 3, 1, 101, dt, op, "tree");
    // Large ones by the ring (messages) and by shared memory: floats and bytes, uneven parts.
    for (const auto &w : kWhere) {
        start(w.device);
        check("reduce", 4, 3, 70001, XO_DTYPE_FLOAT32, XO_REDUCE_MAX, w.shm ? "shm" : "ring");
        check("reduce", 5, 2, 300007, XO_DTYPE_UINT8, XO_REDUCE_PROD, w.shm ? "shm" : "ring");
    }
}

TEST_F(CollRooted, GatherFromEveryRootOfGroupsOfOneToFive)
{
    for (const auto &w : kWhere) {
        start(w.device);
        for (int n = 1; n <= 5; n++)
            for (int root = 0; root < n; root++) {
                check("gather", n, root, kSmall, XO_DTYPE_INT64, XO_REDUCE_SUM, "direct");
                check("gather", n, root, kLarge, XO_DTYPE_INT64, XO_REDUCE_SUM, w.shm ? "shm" : "direct");
            }
        check("gather", 3, 2, 1001, XO_DTYPE_UINT8, XO_REDUCE_SUM, "direct");
        check("gather", 4, 1, 9, XO_DTYPE_FLOAT64, XO_REDUCE_SUM, "direct");
        if (w.device) {
            EXPECT_EQ(mem_used(), 0u);
        }
    }
}

TEST_F(CollRooted, ScatterFromEveryRootOfGroupsOfOneToFive)
{
    for (const auto &w : kWhere) {
        start(w.device);
        for (int n = 1; n <= 5; n++)
            for (int root = 0; root < n; root++) {
                check("scatter", n, root, kSmall * (size_t)n, XO_DTYPE_INT64, XO_REDUCE_SUM, "direct");
                check("scatter", n, root, kLarge * (size_t)n, XO_DTYPE_INT64, XO_REDUCE_SUM, w.shm ? "shm" : "direct");
            }
        check("scatter", 3, 0, 3 * 1001, XO_DTYPE_UINT8, XO_REDUCE_SUM, "direct");
        check("scatter", 4, 3, 4 * 9, XO_DTYPE_FLOAT32, XO_REDUCE_SUM, "direct");
        if (w.device) {
            EXPECT_EQ(mem_used(), 0u);
        }
    }
}

TEST_F(CollRooted, AlltoallOfGroupsOfOneToFive)
{
    for (const auto &w : kWhere) {
        start(w.device);
        for (int n = 1; n <= 5; n++) {
            check("alltoall", n, 0, kSmall * (size_t)n, XO_DTYPE_INT64, XO_REDUCE_SUM, "pairwise");
            check("alltoall", n, 0, kLarge * (size_t)n, XO_DTYPE_INT64, XO_REDUCE_SUM, w.shm ? "shm" : "pairwise");
        }
        check("alltoall", 3, 0, 3 * 1001, XO_DTYPE_INT8, XO_REDUCE_SUM, "pairwise");
        check("alltoall", 5, 0, 5 * 13, XO_DTYPE_FLOAT64, XO_REDUCE_SUM, "pairwise");
        if (w.device) {
            EXPECT_EQ(mem_used(), 0u);
        }
    }
}

// Root's recv as its send (reduce), root's send as its block of recv (gather), root's recv as its block of send
// (scatter).
TEST_F(CollRooted, InPlaceOnRoot)
{
    for (const auto &w : kWhere) {
        start(w.device);
        for (const char *op : {"reduce_inplace", "gather_inplace", "scatter_inplace"})
            for (int n : {1, 3, 4})
                for (int root = 0; root < n; root++) {
                    size_t per = std::string(op) == "scatter_inplace" ? (size_t)n : 1;
                    bool reduce = std::string(op) == "reduce_inplace";
                    check(op, n, root, kSmall * per, XO_DTYPE_INT64, XO_REDUCE_SUM, reduce ? "tree" : "direct");
                    check(op, n, root, kLarge * per, XO_DTYPE_INT64, XO_REDUCE_SUM,
                          w.shm ? "shm" : reduce ? "ring" : "direct");
                }
    }
}

TEST_F(CollRooted, RepeatedRootedOperationsStayInStep)
{
    start(nullptr);
    for (const char *op : {"reduce", "gather", "scatter", "alltoall"}) {
        std::vector<Bytes> in;
        for (int r = 0; r < 3; r++) in.push_back(make_input(XO_DTYPE_INT32, r, 60));
        Op o;
        o.op = op;
        o.dtype = XO_DTYPE_INT32;
        o.root = 2;
        o.repeat = 15;
        auto outs = run_group({members[0], members[1], members[2]}, std::string("again-") + op, addr.c_str(), o, in);
        for (int r = 0; r < 3; r++) {
            ASSERT_EQ(outs[r].st, XO_OK) << op << " rank " << r << ": " << outs[r].error;
            EXPECT_EQ(outs[r].out, expected(op, in, XO_DTYPE_INT32, XO_REDUCE_SUM, 2, r)) << op << " rank " << r;
        }
    }
}

// ---- errors ----

TEST_F(CollRooted, ARootOutsideTheGroupIsRefusedNamingIt)
{
    start(nullptr);
    for (const char *op : {"reduce", "gather", "scatter"})
        for (int root : {3, -1}) {
            std::vector<Bytes> in(3, make_input(XO_DTYPE_INT64, 0, 6));
            Op o;
            o.op = op;
            o.root = root;
            auto outs = run_group({members[0], members[1], members[2]}, std::string("badroot-") + op, addr.c_str(), o,
                                  in);
            for (int r = 0; r < 3; r++) {
                EXPECT_EQ(outs[r].st, XO_EINVAL) << op << " rank " << r;
                EXPECT_NE(outs[r].error.find("root " + std::to_string(root) + " is not a rank"), std::string::npos)
                    << outs[r].error;
            }
        }
}

// Rank 1 passes 2 elements more than the others (per block for scatter and alltoall). The members listed fail (none
// hangs), and one of them says why: whoever receives another length than it expects (the ring: the first step that
// differs, the others then time out), every member in shared memory, where the counts are compared up front.
TEST_F(CollRooted, MembersThatDisagreeOnCountFailWithATextThatSaysSo)
{
    struct Case {
        const char *device, *op;
        size_t elems; // per member (times 3 for the blocked ops)
        std::vector<int> must_fail;
    } cases[] = {
        {nullptr, "reduce", 10, {0}},         {nullptr, "gather", 10, {0}},
        {nullptr, "scatter", 10, {1}},        {nullptr, "alltoall", 10, {0, 1, 2}},
        {nullptr, "reduce", 20000, {0, 1, 2}}, {"host:0", "reduce", 20000, {0, 1, 2}},
        {"host:0", "gather", 20000, {0, 1, 2}}, {"host:0", "alltoall", 20000, {0, 1, 2}},
    };
    for (const auto &c : cases) {
        start(c.device);
        bool blocked = std::string(c.op) == "scatter" || std::string(c.op) == "alltoall";
        std::vector<Bytes> in;
        for (int r = 0; r < 3; r++)
            in.push_back(make_input(XO_DTYPE_INT64, r, (r == 1 ? c.elems + 2 : c.elems) * (blocked ? 3 : 1)));
        Op o;
        o.op = c.op;
        o.timeout_ms = 3000;
        auto outs = run_group({members[0], members[1], members[2]}, std::string("count-") + c.op, addr.c_str(), o, in);
        bool said = false;
        for (int r : c.must_fail) {
            EXPECT_NE(outs[r].st, XO_OK) << c.op << " " << c.elems << " rank " << r;
            said |= outs[r].st == XO_EPROTO && outs[r].error.find("same count") != std::string::npos;
        }
        EXPECT_TRUE(said) << c.op << " " << c.elems << ": " << outs[c.must_fail[0]].error;
    }
}

// Members that call different things (another root, type, reduce operation or collective) on one group: the members
// that receive from a disagreeing one fail at once with a text naming both calls, instead of a timeout or (same
// byte count, another type) a silently wrong result. Over messages, and in shared memory, whose handle exchange is
// made of the same messages.
TEST_F(CollRooted, MembersThatCallDifferentThingsFailWithATextNamingBoth)
{
    struct Case {
        const char *device, *what;
        size_t elems;
        Op mine, rank2;
        const char *text;
    };
    auto op = [](const char *name, xo_dtype_t dt, xo_reduce_op_t rop, int root) {
        Op o;
        o.op = name, o.dtype = dt, o.rop = rop, o.root = root, o.timeout_ms = 3000;
        return o;
    };
    const Case cases[] = {
        {nullptr, "root", 10, op("broadcast", XO_DTYPE_INT64, XO_REDUCE_SUM, 0),
         op("broadcast", XO_DTYPE_INT64, XO_REDUCE_SUM, 1), "broadcast(int64, root 0)"},
        {nullptr, "type", 10, op("allreduce", XO_DTYPE_INT64, XO_REDUCE_SUM, 0),
         op("allreduce", XO_DTYPE_UINT64, XO_REDUCE_SUM, 0), "allreduce(uint64, sum)"},
        {nullptr, "reduce op", 10, op("reduce", XO_DTYPE_INT64, XO_REDUCE_SUM, 0),
         op("reduce", XO_DTYPE_INT64, XO_REDUCE_MAX, 0), "reduce(int64, max, root 0)"},
        {nullptr, "collective", 10, op("gather", XO_DTYPE_INT64, XO_REDUCE_SUM, 0),
         op("alltoall", XO_DTYPE_INT64, XO_REDUCE_SUM, 0), "alltoall(int64)"},
        {"host:0", "type, shared memory", 20000, op("allreduce", XO_DTYPE_INT64, XO_REDUCE_SUM, 0),
         op("allreduce", XO_DTYPE_FLOAT64, XO_REDUCE_SUM, 0), "allreduce(float64, sum)"},
    };
    for (const auto &c : cases) {
        start(c.device);
        bool blocked = c.rank2.op == "alltoall";
        std::vector<Bytes> in;
        for (int r = 0; r < 3; r++) in.push_back(make_input(XO_DTYPE_INT64, r, c.elems * (blocked && r == 2 ? 3 : 1)));
        auto outs = run_group_each({members[0], members[1], members[2]}, std::string("differ-") + c.what,
                                   addr.c_str(), {c.mine, c.mine, c.rank2}, in);
        bool said = false;
        for (int r = 0; r < 3; r++)
            said |= outs[r].st == XO_EPROTO && outs[r].error.find(c.text) != std::string::npos &&
                    outs[r].error.find("every member must call the same collectives") != std::string::npos;
        EXPECT_TRUE(said) << c.what << ": " << outs[0].error << " | " << outs[1].error << " | " << outs[2].error;
    }
}

// Rank 2 joins and leaves without the operation: root (rank 0) fails naming a rank within the timeout, and so does
// every member that waits for rank 2's data (all-to-all).
TEST_F(CollRooted, AMemberThatLeavesFailsTheRootInsteadOfHangingIt)
{
    start(nullptr);
    struct Case {
        const char *op;
        size_t elems;
        std::vector<int> must_fail;
    } cases[] = {{"reduce", 30, {0}},
                 {"reduce", 20000, {0}},
                 {"gather", 30, {0}},
                 {"alltoall", 3 * 30, {0, 1}}}; // (scatter: root only sends, and may do so before rank 2 has left)
    for (const auto &c : cases) {
        std::vector<xo_future_t *> fs(3);
        Bytes in = make_input(XO_DTYPE_INT64, 0, c.elems);
        for (int r = 0; r < 3; r++)
            ASSERT_EQ(xo_send(members[r], "run",
                              xo_args("siisssiiiilb", (std::string("leaver-") + c.op).c_str(), r, 3, addr.c_str(),
                                      "auto", r == 2 ? "join" : c.op, (int)XO_DTYPE_INT64, 0, 0, 1, (int64_t)1500,
                                      in.data(), in.size()),
                              &fs[r]),
                      XO_OK);
        double t0 = now_ms();
        EXPECT_EQ(xo_future_wait(fs[2], 10000, nullptr), XO_OK) << xo_last_error();
        for (int r : c.must_fail) {
            xo_status_t st = xo_future_wait(fs[r], 10000, nullptr);
            EXPECT_TRUE(st == XO_ETIMEDOUT || st == XO_ENOACTOR)
                << c.op << " rank " << r << ": " << xo_status_name(st) << " " << xo_last_error();
            EXPECT_NE(std::string(xo_last_error()).find("rank"), std::string::npos) << xo_last_error();
        }
        for (auto *f : fs) {
            xo_future_wait(f, 10000, nullptr);
            xo_future_free(f);
        }
        EXPECT_LT(now_ms() - t0, 6000.0) << c.op;
    }
}

} // namespace
