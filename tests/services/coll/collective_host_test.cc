// Collectives among members in four processes: a host's main pool and three sub pools, each owning a host device.
// Every operation over shared memory and over messages, and members killed mid-way. The member class comes from the
// xo_test_coll module. Separate from collective_test.cc, whose program registers the same class itself (a module may
// not bring a class the program already has).
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include "services/coll/coll_test_util.h"
#include "xoscar/host.h"

namespace {

using namespace coll_test;

// ---- members in sub pool processes (and the main pool) ----

const char *kCollModules[] = {XO_TEST_COLL_MODULE_PATH};

class CollHost : public ::testing::Test {
  protected:
    void start(unsigned n_subs)
    {
        std::vector<xo_sub_pool_config_t> subs(n_subs);
        for (auto &s : subs) {
            s.device = "host:0";
            s.device_capacity = 128u << 20;
        }
        xo_host_config_t cfg{};
        cfg.n_sub_pools = n_subs;
        cfg.sub_pools = subs.data();
        cfg.modules = kCollModules;
        cfg.n_modules = 1;
        cfg.main_device = "host:0";
        cfg.main_threads = 2;
        cfg.pool_binary = XO_POOL_BINARY;
        ASSERT_EQ(xo_host_start(&cfg, &host), XO_OK) << xo_last_error();
        for (unsigned i = 0; i <= n_subs; i++) { // the main pool is process 0
            xo_placement_t p{};
            p.strategy = "process_index";
            p.process_index = i;
            xo_ref_t *ref = nullptr;
            ASSERT_EQ(xo_host_create_actor(host, "CollMember", nullptr, nullptr, &p, &ref), XO_OK) << xo_last_error();
            members.push_back(ref);
        }
    }
    void TearDown() override
    {
        for (auto *m : members) xo_ref_free(m);
        if (host) xo_host_stop(host);
    }
    xo_host_t *host = nullptr;
    std::vector<xo_ref_t *> members;
};

// Members on host devices of one host read each other's buffers (shm); with XO_COLL_SHM=0 (inherited by the sub
// pools) the same operations go over messages (ring). Both must match the CPU reference.
void all_operations(xo_host_t *host, const std::vector<xo_ref_t *> &members, const std::string &algorithm)
{
    const char *rdv = xo_host_address(host);
    const size_t count = 100003; // not a multiple of 4: uneven ring parts
    std::vector<Bytes> inputs;
    std::vector<int64_t> gathered;
    for (int r = 0; r < 4; r++) {
        auto v = input_i64(r, count);
        inputs.push_back(to_bytes(v));
        gathered.insert(gathered.end(), v.begin(), v.end());
    }
    expect_allreduce_sum(run_group(members, "procs-sum", rdv, Op{}, inputs), count, algorithm);
    Op bcast;
    bcast.op = "broadcast";
    bcast.root = 2;
    auto outs = run_group(members, "procs-bcast", rdv, bcast, inputs);
    for (int r = 0; r < 4; r++) {
        ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
        EXPECT_EQ(from_bytes<int64_t>(outs[r].out), input_i64(2, count));
        EXPECT_EQ(outs[r].algorithm, algorithm == "shm" ? "shm" : "tree");
    }
    Op rs;
    rs.op = "reduce_scatter";
    const size_t block = 25001;
    std::vector<Bytes> rs_inputs;
    std::vector<int64_t> sum(block * 4, 0);
    for (int r = 0; r < 4; r++) {
        auto v = input_i64(r, block * 4);
        for (size_t i = 0; i < v.size(); i++) sum[i] += v[i];
        rs_inputs.push_back(to_bytes(v));
    }
    auto rs_outs = run_group(members, "procs-rs", rdv, rs, rs_inputs);
    for (int r = 0; r < 4; r++) {
        ASSERT_EQ(rs_outs[r].st, XO_OK) << rs_outs[r].error;
        EXPECT_EQ(from_bytes<int64_t>(rs_outs[r].out),
                  std::vector<int64_t>(sum.begin() + (long)(block * (size_t)r), sum.begin() + (long)(block * (size_t)(r + 1))));
        EXPECT_EQ(rs_outs[r].algorithm, algorithm);
    }
    Op gather;
    gather.op = "allgather";
    outs = run_group(members, "procs-gather", rdv, gather, inputs);
    for (int r = 0; r < 4; r++) {
        ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
        EXPECT_EQ(from_bytes<int64_t>(outs[r].out), gathered);
        EXPECT_EQ(outs[r].algorithm, algorithm);
    }
    for (auto *m : members) { // every member's device is back to what it was
        xo_result_t *r = nullptr;
        uint64_t used = 1;
        ASSERT_EQ(xo_call(m, "mem_used", nullptr, 5000, &r), XO_OK);
        xo_result_unpack(r, "u", &used);
        xo_result_free(r);
        EXPECT_EQ(used, 0u);
    }
}

// Reduce, gather, scatter and alltoall among the four processes, every buffer past one 192 KiB piece (and a small
// reduce and alltoall: the tree and single messages), roots other than the main pool's member.
void rooted_operations(xo_host_t *host, const std::vector<xo_ref_t *> &members, bool shm)
{
    const char *rdv = xo_host_address(host);
    struct Case {
        const char *op;
        int root;
        size_t elems; // per member: count, or size blocks of count
        xo_dtype_t dt;
        const char *algorithm;
    } cases[] = {
        {"reduce", 3, 50003, XO_DTYPE_INT64, shm ? "shm" : "ring"},
        {"reduce", 1, 33, XO_DTYPE_FLOAT32, "tree"},
        {"gather", 1, 30011, XO_DTYPE_INT64, shm ? "shm" : "direct"},
        {"scatter", 2, 4 * 30011, XO_DTYPE_INT64, shm ? "shm" : "direct"},
        {"alltoall", 0, 4 * 30011, XO_DTYPE_INT64, shm ? "shm" : "pairwise"},
        {"alltoall", 0, 4 * 5, XO_DTYPE_INT32, "pairwise"},
    };
    for (const auto &c : cases) {
        std::vector<Bytes> in;
        for (int r = 0; r < 4; r++) in.push_back(make_input(c.dt, r, c.elems));
        Op o;
        o.op = c.op;
        o.root = c.root;
        o.dtype = c.dt;
        auto outs = run_group(members, std::string("procs-") + c.op + std::to_string(c.elems), rdv, o, in);
        for (int r = 0; r < 4; r++) {
            SCOPED_TRACE(std::string(c.op) + " " + std::to_string(c.elems) + " rank " + std::to_string(r));
            ASSERT_EQ(outs[r].st, XO_OK) << outs[r].error;
            EXPECT_EQ(outs[r].out, expected(c.op, in, c.dt, XO_REDUCE_SUM, c.root, r));
            EXPECT_EQ(outs[r].algorithm, c.algorithm);
        }
    }
}

TEST_F(CollHost, RootedOperationsAndAlltoallAcrossFourProcessesOverSharedMemory)
{
    start(3);
    rooted_operations(host, members, true);
}

TEST_F(CollHost, RootedOperationsAndAlltoallAcrossFourProcessesOverMessages)
{
    setenv("XO_COLL_SHM", "0", 1);
    start(3);
    unsetenv("XO_COLL_SHM");
    rooted_operations(host, members, false);
}

TEST_F(CollHost, AllOperationsAcrossFourProcessesOverSharedMemory)
{
    start(3);
    all_operations(host, members, "shm");
}

TEST_F(CollHost, AllOperationsAcrossFourProcessesOverMessages)
{
    setenv("XO_COLL_SHM", "0", 1);
    start(3);
    unsetenv("XO_COLL_SHM");
    all_operations(host, members, "ring");
}

TEST_F(CollHost, AMemberWhosePoolIsKilledFailsTheOthersQuickly)
{
    start(2);
    const char *rdv = xo_host_address(host);
    std::vector<Bytes> inputs;
    for (int r = 0; r < 3; r++) inputs.push_back(to_bytes(input_i64(r, 64)));
    // Rank 2 never gets its call: its pool is killed while ranks 0 and 1 wait for it at the rendezvous. (How many
    // had joined when one gave up is racy: the first to time out withdraws.)
    std::vector<xo_future_t *> fs(2);
    for (int r = 0; r < 2; r++)
        ASSERT_EQ(xo_send(members[r], "run",
                          xo_args("siisssiiiilb", "killed", r, 3, rdv, "auto", "allreduce", (int)XO_DTYPE_INT64, 0, 0,
                                  1, (int64_t)2000, inputs[r].data(), inputs[r].size()),
                          &fs[r]),
                  XO_OK);
    int pid = xo_host_sub_pool_pid(host, 2);
    ASSERT_GT(pid, 0);
    kill(pid, SIGKILL);
    double t0 = now_ms();
    for (int r = 0; r < 2; r++) {
        xo_status_t st = xo_future_wait(fs[r], 20000, nullptr);
        EXPECT_EQ(st, XO_ETIMEDOUT) << xo_last_error();
        EXPECT_NE(std::string(xo_last_error()).find("of 3 members joined within"), std::string::npos) << "rank " << r << ": " << xo_last_error();
        xo_future_free(fs[r]);
    }
    EXPECT_LT(now_ms() - t0, 10000.0);
}

// A member's pool killed while the group is in the middle of a long series of allreduces (over shared memory and over
// messages): the others fail, naming a rank, within about the group's timeout; nobody hangs or crashes.
TEST_F(CollHost, AMemberKilledMidOperationFailsTheOthersWithoutAHang)
{
    for (const char *shm : {"1", "0"}) {
        setenv("XO_COLL_SHM", shm, 1);
        start(2);
        unsetenv("XO_COLL_SHM");
        const char *rdv = xo_host_address(host);
        std::vector<Bytes> inputs;
        for (int r = 0; r < 3; r++) inputs.push_back(to_bytes(input_i64(r, 1 << 17))); // 1 MiB each
        std::vector<xo_future_t *> fs(3);
        for (int r = 0; r < 3; r++)
            ASSERT_EQ(xo_send(members[r], "run",
                              xo_args("siisssiiiilb", "midway", r, 3, rdv, "auto", "allreduce", (int)XO_DTYPE_INT64, 0,
                                      0, 100000, (int64_t)2000, inputs[r].data(), inputs[r].size()),
                              &fs[r]),
                      XO_OK);
        usleep(300 * 1000); // well into the series
        int pid = xo_host_sub_pool_pid(host, 2);
        ASSERT_GT(pid, 0);
        kill(pid, SIGKILL);
        double t0 = now_ms();
        for (int r = 0; r < 2; r++) {
            xo_status_t st = xo_future_wait(fs[r], 20000, nullptr);
            EXPECT_NE(st, XO_OK) << "shm=" << shm << " rank " << r;
            EXPECT_NE(std::string(xo_last_error()).find("rank"), std::string::npos)
                << "shm=" << shm << " rank " << r << ": " << xo_last_error();
        }
        EXPECT_LT(now_ms() - t0, 8000.0) << "shm=" << shm;
        for (auto *f : fs) xo_future_free(f);
        for (auto *m : members) xo_ref_free(m);
        members.clear();
        xo_host_stop(host);
        host = nullptr;
    }
}

} // namespace
