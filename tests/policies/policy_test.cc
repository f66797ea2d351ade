// Unit tests for policies/: every policy over hand-built pool views, then one parameterised suite that runs every
// registered policy over the same edge cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "policies/policy.h"
#include "base/error.h"

namespace {

constexpr uint64_t GiB = 1ull << 30;

// Owns the strings and arrays the views borrow, and keeps the views' pointers to them current.
class Cluster {
  public:
    size_t add(const std::string &address, size_t process_index, std::vector<std::string> labels = {})
    {
        addresses_.push_back(address);
        labels_.emplace_back(std::move(labels));
        marks_.emplace_back();
        xo_pool_view_t v{};
        v.process_index = process_index;
        v.device_kind = XO_POOL_DEVICE_NONE;
        v.device_index = -1;
        views_.push_back(v);
        return views_.size() - 1;
    }
    // A pool with a device: free and total in bytes.
    size_t add_gpu(const std::string &address, size_t process_index, std::vector<std::string> labels, uint64_t free,
                   uint64_t total = 16 * GiB)
    {
        size_t i = add(address, process_index, std::move(labels));
        views_[i].device_kind = XO_POOL_DEVICE_CUDA;
        views_[i].device_index = (int)process_index - 1;
        views_[i].mem_free = free;
        views_[i].mem_total = total;
        return i;
    }
    xo_pool_view_t &at(size_t i) { return views_[i]; }
    // Pool i's costs to the near peers: {latency_us, bandwidth} per peer, as the host fills them from a profile.
    void set_near(size_t i, std::vector<xo_pair_cost_t> costs)
    {
        near_.resize(views_.size());
        near_[i] = std::move(costs);
    }
    // One near peer reached from pool i in `latency_us` (the old scalar link cost; 0: unknown).
    void set_link(size_t i, double latency_us) { set_near(i, {{latency_us, 0}}); }
    // What the main pool's allocation table does after placing an IdleLabel actor on pool i.
    void hold_mark(size_t i, const std::string &label, const std::string &mark)
    {
        strings_.push_back(label);
        const char *l = strings_.back().c_str();
        strings_.push_back(mark);
        marks_[i].push_back({l, strings_.back().c_str()});
    }
    const xo_pool_view_t *data()
    {
        for (size_t i = 0; i < views_.size(); i++) {
            label_ptrs_.resize(views_.size());
            label_ptrs_[i].clear();
            for (auto &l : labels_[i]) label_ptrs_[i].push_back(l.c_str());
            views_[i].address = addresses_[i].c_str();
            views_[i].labels = label_ptrs_[i].empty() ? nullptr : label_ptrs_[i].data();
            views_[i].n_labels = label_ptrs_[i].size();
            views_[i].idle_marks = marks_[i].empty() ? nullptr : marks_[i].data();
            views_[i].n_idle_marks = marks_[i].size();
            views_[i].near_cost = i < near_.size() && !near_[i].empty() ? near_[i].data() : nullptr;
        }
        return views_.data();
    }
    size_t size() const { return views_.size(); }

  private:
    std::deque<std::string> addresses_, strings_;
    std::deque<std::vector<std::string>> labels_;
    std::vector<std::vector<const char *>> label_ptrs_;
    std::deque<std::vector<xo_idle_mark_t>> marks_;
    std::vector<std::vector<xo_pair_cost_t>> near_;
    std::vector<xo_pool_view_t> views_;
};

xo_place_request_t request(xo_place_kind_t kind)
{
    xo_place_request_t r{};
    r.kind = kind;
    return r;
}

// One near peer, latency only: what Cluster::set_link's costs are costs to.
const xo_place_near_t kOnePeer[1] = {{0, false, false}};

xo_place_request_t near_request(xo_place_kind_t kind, const xo_place_near_t *near = kOnePeer, size_t n_near = 1)
{
    xo_place_request_t r = request(kind);
    r.near = near;
    r.n_near = n_near;
    return r;
}

constexpr size_t kUnset = 12345;

// Places and returns the index; fails the test (with the error text) on error.
size_t place_ok(Cluster &c, const xo_place_request_t &req)
{
    size_t chosen = kUnset;
    xo_status_t st = xo__place(c.data(), c.size(), &req, &chosen);
    EXPECT_EQ(st, XO_OK) << xo_status_name(st) << ": " << xo_last_error();
    EXPECT_LT(chosen, c.size());
    return chosen;
}

// Expects error st with a text containing `needle`, and the result left alone.
void place_err(Cluster &c, const xo_place_request_t &req, xo_status_t want, const std::string &needle)
{
    xo__error_clear();
    size_t chosen = kUnset;
    xo_status_t st = xo__place(c.data(), c.size(), &req, &chosen);
    EXPECT_EQ(st, want) << "got " << xo_status_name(st) << ": " << xo_last_error();
    EXPECT_EQ(chosen, kUnset);
    EXPECT_NE(std::string(xo_last_error()).find(needle), std::string::npos)
        << "error text \"" << xo_last_error() << "\" lacks \"" << needle << "\"";
}

bool has_label(const xo_pool_view_t &p, const char *label)
{
    for (size_t i = 0; i < p.n_labels; i++)
        if (std::strcmp(p.labels[i], label) == 0) return true;
    return false;
}

bool same_view(const xo_pool_view_t &a, const xo_pool_view_t &b)
{
    return a.address == b.address && a.process_index == b.process_index && a.labels == b.labels &&
           a.n_labels == b.n_labels && a.device_kind == b.device_kind && a.device_index == b.device_index &&
           a.mem_free == b.mem_free && a.mem_total == b.mem_total && a.n_actors == b.n_actors &&
           a.n_queued == b.n_queued && a.n_busy == b.n_busy && a.near_cost == b.near_cost && a.idle_marks == b.idle_marks &&
           a.n_idle_marks == b.n_idle_marks;
}

bool same_request(const xo_place_request_t &a, const xo_place_request_t &b)
{
    return a.kind == b.kind && a.address == b.address && a.process_index == b.process_index && a.label == b.label &&
           a.mark == b.mark && a.mem_bytes == b.mem_bytes && a.weights.mem == b.weights.mem &&
           a.weights.load == b.weights.load && a.weights.link == b.weights.link && a.seed == b.seed &&
           a.cursor == b.cursor && a.near == b.near && a.n_near == b.n_near;
}

// main pool + three sub pools; 1 and 3 carry "gpu".
Cluster four_pools()
{
    Cluster c;
    c.add("127.0.0.1:9000/0", 0, {"cpu"});
    c.add_gpu("127.0.0.1:9000/1", 1, {"gpu"}, 4 * GiB);
    c.add("127.0.0.1:9000/2", 2, {"cpu", "io"});
    c.add_gpu("127.0.0.1:9000/3", 3, {"gpu", "big"}, 8 * GiB);
    return c;
}

// ---------------------------------------------------------------------------------------------------------------
// Registry

TEST(PolicyRegistry, EveryKindHasAWellFormedPolicy)
{
    std::set<std::string> names;
    for (int k = 0; k < XO_PLACE_KIND_COUNT; k++) {
        const xo_policy_ops_t *ops = xo__policy_get((xo_place_kind_t)k);
        ASSERT_NE(ops, nullptr) << "kind " << k;
        EXPECT_EQ((int)ops->kind, k);
        ASSERT_NE(ops->name, nullptr);
        EXPECT_GT(std::strlen(ops->name), 0u);
        EXPECT_NE(ops->choose, nullptr);
        EXPECT_TRUE(names.insert(ops->name).second) << "duplicate name " << ops->name;
        if (ops->alias) {
            EXPECT_TRUE(names.insert(ops->alias).second) << "duplicate alias " << ops->alias;
        }
    }
    EXPECT_EQ(xo__policy_get((xo_place_kind_t)-1), nullptr);
    EXPECT_EQ(xo__policy_get((xo_place_kind_t)XO_PLACE_KIND_COUNT), nullptr);
}

TEST(PolicyRegistry, FindByNameAndXoscarAlias)
{
    for (int k = 0; k < XO_PLACE_KIND_COUNT; k++) {
        const xo_policy_ops_t *ops = xo__policy_get((xo_place_kind_t)k);
        EXPECT_EQ(xo__policy_find(ops->name), ops);
        if (ops->alias) {
            EXPECT_EQ(xo__policy_find(ops->alias), ops);
        }
    }
    EXPECT_EQ(xo__policy_find("least_loaded")->kind, XO_PLACE_LEAST_LOADED);
    EXPECT_EQ(xo__policy_find("IdleLabel")->kind, XO_PLACE_IDLE_LABEL);
    EXPECT_EQ(xo__policy_find("weighted")->kind, XO_PLACE_WEIGHTED);
    EXPECT_EQ(xo__policy_find("no_such_policy"), nullptr);
    EXPECT_EQ(xo__policy_find("least"), nullptr);
    EXPECT_EQ(xo__policy_find(""), nullptr);
    EXPECT_EQ(xo__policy_find(nullptr), nullptr);
}

// ---------------------------------------------------------------------------------------------------------------
// Argument checks in xo__place

TEST(PlaceArgs, RejectsBadArguments)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_MAIN_POOL);
    size_t chosen = kUnset;
    EXPECT_EQ(xo__place(c.data(), c.size(), nullptr, &chosen), XO_EINVAL);
    EXPECT_EQ(xo__place(c.data(), c.size(), &req, nullptr), XO_EINVAL);
    EXPECT_EQ(xo__place(nullptr, 3, &req, &chosen), XO_EINVAL);
    EXPECT_EQ(chosen, kUnset);

    req.kind = (xo_place_kind_t)XO_PLACE_KIND_COUNT;
    place_err(c, req, XO_EINVAL, "unknown placement kind");
    req.kind = (xo_place_kind_t)-3;
    place_err(c, req, XO_EINVAL, "unknown placement kind -3");
}

TEST(PlaceArgs, RejectsMalformedViews)
{
    xo_place_request_t req = near_request(XO_PLACE_LEAST_LOADED);
    {
        Cluster c = four_pools();
        c.data();
        c.at(2).address = nullptr;
        size_t chosen = kUnset;
        EXPECT_EQ(xo__place(&c.at(0), c.size(), &req, &chosen), XO_EINVAL);
        EXPECT_NE(std::string(xo_last_error()).find("pool 2 has no address"), std::string::npos) << xo_last_error();
        EXPECT_EQ(chosen, kUnset);
    }
    {
        Cluster c = four_pools();
        c.data();
        c.at(1).labels = nullptr; // n_labels stays 1
        size_t chosen = kUnset;
        EXPECT_EQ(xo__place(&c.at(0), c.size(), &req, &chosen), XO_EINVAL);
        EXPECT_NE(std::string(xo_last_error()).find("127.0.0.1:9000/1"), std::string::npos) << xo_last_error();
    }
    {
        Cluster c = four_pools();
        c.data();
        c.at(1).n_idle_marks = 2; // marks pointer is NULL
        size_t chosen = kUnset;
        EXPECT_EQ(xo__place(&c.at(0), c.size(), &req, &chosen), XO_EINVAL);
    }
    for (double cost : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
        Cluster c = four_pools();
        c.set_link(3, cost);
        place_err(c, req, XO_EINVAL, "pair cost");
    }
    {
        Cluster c = four_pools();
        c.at(0).device_kind = (xo_pool_device_t)7;
        place_err(c, req, XO_EINVAL, "unknown device kind 7");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One test group per policy

TEST(AddressPolicy, PicksTheExactAddress)
{
    Cluster c;
    c.add("127.0.0.1:9000/1", 1);
    c.add("127.0.0.1:9000/10", 10);
    c.add("127.0.0.1:9000/0", 0);
    xo_place_request_t req = request(XO_PLACE_ADDRESS);
    req.address = "127.0.0.1:9000/10";
    EXPECT_EQ(place_ok(c, req), 1u);
    req.address = "127.0.0.1:9000/0";
    EXPECT_EQ(place_ok(c, req), 2u);
    req.address = "127.0.0.1:9000/1";
    EXPECT_EQ(place_ok(c, req), 0u);
}

TEST(AddressPolicy, UnknownAddressIsNamed)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_ADDRESS);
    req.address = "10.0.0.9:7000";
    place_err(c, req, XO_EINVAL, "unknown address \"10.0.0.9:7000\"");
    req.address = "127.0.0.1:9000"; // a prefix of every address is still not one of them
    place_err(c, req, XO_EINVAL, "127.0.0.1:9000");
    req.address = nullptr;
    place_err(c, req, XO_EINVAL, "no address");
}

TEST(MainPoolPolicy, PicksProcessIndexZeroWhereverItIs)
{
    Cluster c;
    c.add("h:1", 1);
    c.add("h:2", 2);
    c.add("h:0", 0);
    EXPECT_EQ(place_ok(c, request(XO_PLACE_MAIN_POOL)), 2u);

    Cluster subs;
    subs.add("h:1", 1);
    place_err(subs, request(XO_PLACE_MAIN_POOL), XO_ENOSLOT, "no main pool");
}

TEST(ProcessIndexPolicy, PicksByIndexAndRejectsOutOfRange)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_PROCESS_INDEX);
    for (size_t i = 0; i < 4; i++) {
        req.process_index = i;
        EXPECT_EQ(place_ok(c, req), i);
    }
    req.process_index = 7;
    place_err(c, req, XO_EINVAL, "no pool has process index 7 (the highest is 3)");
}

TEST(RandomPolicy, DeterministicForASeedAndCoversEveryPool)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_RANDOM);
    std::vector<int> hits(c.size());
    for (uint64_t seed = 0; seed < 4000; seed++) {
        req.seed = seed;
        size_t a = place_ok(c, req);
        EXPECT_EQ(place_ok(c, req), a) << "seed " << seed;
        hits[a]++;
    }
    // Uniform: 1000 each expected; a biased draw (e.g. always the first) fails this.
    for (size_t i = 0; i < hits.size(); i++) {
        EXPECT_GT(hits[i], 850) << "pool " << i;
        EXPECT_LT(hits[i], 1150) << "pool " << i;
    }
}

TEST(RandomPolicy, FiltersComposeAndOnlyEligiblePoolsAreChosen)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_RANDOM);
    req.label = "gpu";
    std::set<size_t> seen;
    for (uint64_t seed = 0; seed < 200; seed++) {
        req.seed = seed;
        seen.insert(place_ok(c, req));
    }
    EXPECT_EQ(seen, (std::set<size_t>{1, 3}));

    req.mem_bytes = 5 * GiB;
    for (uint64_t seed = 0; seed < 50; seed++) {
        req.seed = seed;
        EXPECT_EQ(place_ok(c, req), 3u);
    }
}

TEST(RandomPolicy, SeedSequenceIsReproducible)
{
    uint64_t a = 42, b = 42;
    std::set<uint64_t> seeds;
    for (int i = 0; i < 100; i++) {
        uint64_t s = xo__place_seed_next(&a);
        EXPECT_EQ(s, xo__place_seed_next(&b));
        seeds.insert(s);
    }
    EXPECT_EQ(seeds.size(), 100u);

    // Drawing with the sequence from the same start state places the same way every time.
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_RANDOM);
    auto run = [&](uint64_t state) {
        std::vector<size_t> out;
        for (int i = 0; i < 20; i++) {
            req.seed = xo__place_seed_next(&state);
            out.push_back(place_ok(c, req));
        }
        return out;
    };
    EXPECT_EQ(run(7), run(7));
    EXPECT_NE(run(7), run(8)); // 4^-20 chance of a false failure
}

TEST(RandomSubPoolPolicy, NeverTheMainPool)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_RANDOM_SUB_POOL);
    std::set<size_t> seen;
    for (uint64_t seed = 0; seed < 300; seed++) {
        req.seed = seed;
        size_t i = place_ok(c, req);
        EXPECT_NE(c.at(i).process_index, 0u);
        seen.insert(i);
    }
    EXPECT_EQ(seen, (std::set<size_t>{1, 2, 3}));

    req.label = "cpu"; // the main pool has it too, but is excluded
    for (uint64_t seed = 0; seed < 50; seed++) {
        req.seed = seed;
        EXPECT_EQ(place_ok(c, req), 2u);
    }

    Cluster only_main;
    only_main.add("h:0", 0);
    place_err(only_main, request(XO_PLACE_RANDOM_SUB_POOL), XO_ENOSLOT, "no sub pool");
}

TEST(RandomLabelPolicy, OnlyPoolsWithTheLabel)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_RANDOM_LABEL);
    req.label = "io";
    for (uint64_t seed = 0; seed < 50; seed++) {
        req.seed = seed;
        EXPECT_EQ(place_ok(c, req), 2u);
    }
    req.label = "gpu";
    std::set<size_t> seen;
    for (uint64_t seed = 0; seed < 200; seed++) {
        req.seed = seed;
        seen.insert(place_ok(c, req));
    }
    EXPECT_EQ(seen, (std::set<size_t>{1, 3}));

    req.label = "tpu";
    place_err(c, req, XO_ENOSLOT, "no pool has label \"tpu\"");
    req.label = nullptr;
    place_err(c, req, XO_EINVAL, "no label");
}

TEST(IdleLabelPolicy, TwoDistinctPoolsThenNoIdleSlot)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_IDLE_LABEL);
    req.label = "gpu";
    req.mark = "worker";

    size_t first = place_ok(c, req);
    EXPECT_EQ(first, 1u); // the first pool with the label
    c.hold_mark(first, "gpu", "worker");
    size_t second = place_ok(c, req);
    EXPECT_EQ(second, 3u);
    c.hold_mark(second, "gpu", "worker");
    place_err(c, req, XO_ENOIDLESLOT, "label \"gpu\"");

    // Another mark, or the same mark under another label, is a different slot.
    req.mark = "reader";
    EXPECT_EQ(place_ok(c, req), 1u);
    c.hold_mark(2, "cpu", "worker");
    req.label = "cpu";
    req.mark = "worker";
    EXPECT_EQ(place_ok(c, req), 0u);
    c.hold_mark(0, "cpu", "worker");
    place_err(c, req, XO_ENOIDLESLOT, "label \"cpu\"");
}

TEST(IdleLabelPolicy, NullMarkEqualsEmptyMark)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_IDLE_LABEL);
    req.label = "gpu";
    c.hold_mark(1, "gpu", "");
    EXPECT_EQ(place_ok(c, req), 3u);
}

TEST(IdleLabelPolicy, MissingLabelAndMemoryFilter)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_IDLE_LABEL);
    req.label = "tpu";
    place_err(c, req, XO_ENOIDLESLOT, "no pool has label \"tpu\"");
    req.label = nullptr;
    place_err(c, req, XO_EINVAL, "no label");

    // Pool 1 is idle but has only 4 GiB: the 6 GiB actor goes to pool 3; once 3 is taken, the memory is to blame.
    req.label = "gpu";
    req.mark = "m";
    req.mem_bytes = 6 * GiB;
    EXPECT_EQ(place_ok(c, req), 3u);
    c.hold_mark(3, "gpu", "m");
    place_err(c, req, XO_ENOSLOT, "largest free: 4294967296 on 127.0.0.1:9000/1");
}

TEST(RoundRobinPolicy, Cycles)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_ROUND_ROBIN);
    std::vector<size_t> order;
    for (int i = 0; i < 9; i++) {
        size_t chosen = place_ok(c, req);
        order.push_back(chosen);
        req.cursor = chosen + 1;
    }
    EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 0, 1, 2, 3, 0}));
}

TEST(RoundRobinPolicy, CyclesOverFilteredPoolsAndWraps)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(XO_PLACE_ROUND_ROBIN);
    req.label = "gpu";
    std::vector<size_t> order;
    for (int i = 0; i < 5; i++) {
        size_t chosen = place_ok(c, req);
        order.push_back(chosen);
        req.cursor = chosen + 1;
    }
    EXPECT_EQ(order, (std::vector<size_t>{1, 3, 1, 3, 1}));
    req.cursor = 4 * 1000 + 2; // any cursor works, taken modulo the pool count
    EXPECT_EQ(place_ok(c, req), 3u);
    req.label = "tpu";
    place_err(c, req, XO_ENOSLOT, "no pool has label \"tpu\"");
}

TEST(LeastLoadedPolicy, PicksLowestActorsPlusQueued)
{
    Cluster c = four_pools();
    c.at(0).n_actors = 5;
    c.at(1).n_actors = 1;
    c.at(1).n_queued = 9; // load 10
    c.at(2).n_actors = 3;
    c.at(2).n_queued = 1; // load 4
    c.at(3).n_actors = 6;
    xo_place_request_t req = request(XO_PLACE_LEAST_LOADED);
    EXPECT_EQ(place_ok(c, req), 2u);

    c.at(0).n_actors = 4; // tie with pool 2: the lower index wins
    EXPECT_EQ(place_ok(c, req), 0u);

    req.label = "gpu"; // label filter: among 1 (10) and 3 (6)
    EXPECT_EQ(place_ok(c, req), 3u);
    req.mem_bytes = 5 * GiB;
    EXPECT_EQ(place_ok(c, req), 3u);
    c.at(3).n_actors = 20;
    EXPECT_EQ(place_ok(c, req), 3u); // still the only one that fits
    req.mem_bytes = 0;
    EXPECT_EQ(place_ok(c, req), 1u);
}

// Busy threads are load too: a pool running work on both its threads is heavier than one holding an idle actor more.
TEST(LeastLoadedPolicy, BusyThreadsCountAsLoad)
{
    Cluster c;
    c.add("a", 1);
    c.add("b", 2);
    c.at(0).n_actors = 1;
    c.at(0).n_busy = 2; // load 3
    c.at(1).n_actors = 2; // load 2
    EXPECT_EQ(place_ok(c, request(XO_PLACE_LEAST_LOADED)), 1u);
    c.at(0).n_busy = 0; // load 1
    EXPECT_EQ(place_ok(c, request(XO_PLACE_LEAST_LOADED)), 0u);
    c.at(1).n_busy = UINT64_MAX; // saturates rather than wrapping to a small load
    c.at(0).n_busy = 5;
    EXPECT_EQ(place_ok(c, request(XO_PLACE_LEAST_LOADED)), 0u);
}

TEST(LeastLoadedPolicy, SaturatesInsteadOfWrapping)
{
    Cluster c;
    c.add("a", 0);
    c.add("b", 1);
    c.at(0).n_actors = UINT64_MAX;
    c.at(0).n_queued = 2; // would wrap to 1 without saturation
    c.at(1).n_actors = 100;
    EXPECT_EQ(place_ok(c, request(XO_PLACE_LEAST_LOADED)), 1u);
}

TEST(MostFreeMemoryPolicy, PicksMostFreeAndExcludesSmallPools)
{
    Cluster c;
    c.add("127.0.0.1:9000/0", 0, {"cpu"});
    c.add_gpu("127.0.0.1:9000/1", 1, {"gpu"}, 3 * GiB);
    c.add_gpu("127.0.0.1:9000/2", 2, {"gpu"}, 1 * GiB);
    c.add_gpu("127.0.0.1:9000/3", 3, {"other"}, 12 * GiB);
    xo_place_request_t req = request(XO_PLACE_MOST_FREE_MEMORY);
    EXPECT_EQ(place_ok(c, req), 3u);
    req.label = "gpu";
    EXPECT_EQ(place_ok(c, req), 1u);
    req.mem_bytes = 2 * GiB;
    EXPECT_EQ(place_ok(c, req), 1u);

    c.at(2).mem_free = 3 * GiB; // tie: lowest index
    EXPECT_EQ(place_ok(c, req), 1u);
    c.at(2).mem_free = 3 * GiB + 1;
    EXPECT_EQ(place_ok(c, req), 2u);
}

TEST(MostFreeMemoryPolicy, ErrorNamesLargestFreeAmount)
{
    Cluster c;
    c.add("127.0.0.1:9000/0", 0, {"gpu"}); // no device: never a candidate, not the "largest"
    c.add_gpu("127.0.0.1:9000/1", 1, {"gpu"}, 512u << 20);
    c.add_gpu("127.0.0.1:9000/2", 2, {"gpu"}, 1 * GiB);
    c.add_gpu("127.0.0.1:9000/3", 3, {"cpu"}, 12 * GiB); // more, but without the label
    xo_place_request_t req = request(XO_PLACE_MOST_FREE_MEMORY);
    req.label = "gpu";
    req.mem_bytes = 2 * GiB;
    place_err(c, req, XO_ENOSLOT,
              "no pool with label \"gpu\" has 2147483648 bytes free (largest free: 1073741824 on 127.0.0.1:9000/2)");

    req.label = nullptr;
    req.mem_bytes = 13 * GiB;
    place_err(c, req, XO_ENOSLOT, "no pool has 13958643712 bytes free (largest free: 12884901888 on 127.0.0.1:9000/3)");
}

TEST(MostFreeMemoryPolicy, NeedsADeviceAndClampsStaleFree)
{
    Cluster cpus;
    cpus.add("a", 0, {"x"});
    cpus.add("b", 1, {"x"});
    place_err(cpus, request(XO_PLACE_MOST_FREE_MEMORY), XO_ENOSLOT, "has a device");

    Cluster c;
    c.add_gpu("a", 1, {}, 10 * GiB, 4 * GiB); // stale free above total: counts as 4 GiB
    c.add_gpu("b", 2, {}, 5 * GiB, 8 * GiB);
    EXPECT_EQ(place_ok(c, request(XO_PLACE_MOST_FREE_MEMORY)), 1u);
    c.at(1).device_kind = XO_POOL_DEVICE_HOST; // the host backend's memory counts as device memory
    EXPECT_EQ(place_ok(c, request(XO_PLACE_MOST_FREE_MEMORY)), 1u);
}

// Three candidates, each best on exactly one term: 0 has the most free memory, 1 the lowest load, 2 the lowest link
// cost. A fourth pool is best on every term but lacks the label.
Cluster weighted_cluster()
{
    Cluster c;
    c.add_gpu("mem", 1, {"gpu"}, 15 * GiB, 16 * GiB);
    c.add_gpu("idle", 2, {"gpu"}, 4 * GiB, 16 * GiB);
    c.add_gpu("near", 3, {"gpu"}, 4 * GiB, 16 * GiB);
    c.add_gpu("other", 4, {"cpu"}, 16 * GiB, 16 * GiB);
    c.at(0).n_actors = 8;
    c.set_link(0, 10);
    c.at(1).n_actors = 0;
    c.set_link(1, 10);
    c.at(2).n_actors = 8;
    c.set_link(2, 1);
    c.set_link(3, 0.5);
    return c;
}

TEST(WeightedPolicy, EachWeightPrefersItsPool)
{
    Cluster c = weighted_cluster();
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED);
    req.label = "gpu";
    req.weights = {1, 0, 0};
    EXPECT_EQ(place_ok(c, req), 0u);
    req.weights = {0, 1, 0};
    EXPECT_EQ(place_ok(c, req), 1u);
    req.weights = {0, 0, 1};
    EXPECT_EQ(place_ok(c, req), 2u);
    // Without the label filter the unlabelled pool wins every term.
    req.label = nullptr;
    EXPECT_EQ(place_ok(c, req), 3u);
}

TEST(WeightedPolicy, FormulaBalancesTheTerms)
{
    Cluster c = weighted_cluster();
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED);
    req.label = "gpu";
    // Scores with mem, load, link weights (a, b, d):
    //   pool 0: a*15/16 - b*1 - d*1      pool 1: a*4/16 - b*0 - d*1      pool 2: a*4/16 - b*1 - d*0.1
    req.weights = {1, 1, 1}; // 0: -1.0625, 1: -0.75, 2: -0.85
    EXPECT_EQ(place_ok(c, req), 1u);
    req.weights = {4, 1, 1}; // 0: 1.75, 1: 0, 2: -0.1
    EXPECT_EQ(place_ok(c, req), 0u);
    req.weights = {1, 1, 2}; // 0: -2.0625, 1: -1.75, 2: -0.95
    EXPECT_EQ(place_ok(c, req), 2u);
    req.weights = {0, 0, 0}; // the defaults, i.e. {1, 1, 1}
    EXPECT_EQ(place_ok(c, req), 1u);
}

TEST(WeightedPolicy, ExcludesPoolsThatCannotFit)
{
    Cluster c = weighted_cluster();
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED);
    req.label = "gpu";
    req.weights = {0, 1, 0};
    req.mem_bytes = 8 * GiB; // only pool 0 fits among the labelled
    EXPECT_EQ(place_ok(c, req), 0u);
    req.mem_bytes = 15 * GiB + 1;
    place_err(c, req, XO_ENOSLOT, "largest free: 16106127360 on mem");
}

TEST(WeightedPolicy, UnknownLinkCostIsTheMeanOfKnownOnes)
{
    Cluster c;
    c.add_gpu("known-far", 1, {}, 8 * GiB, 16 * GiB);
    c.add_gpu("unknown", 2, {}, 8 * GiB, 16 * GiB);
    c.add_gpu("known-near", 3, {}, 8 * GiB, 16 * GiB);
    c.set_link(0, 9);
    c.set_link(2, 1);
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED);
    req.weights = {0, 0, 1};
    EXPECT_EQ(place_ok(c, req), 2u); // near (1) beats unknown (counted as 5), which beats far (9)
    c.set_link(2, 20);          // unknown counts as 14.5: known-far (9) is now the nearest
    EXPECT_EQ(place_ok(c, req), 0u);
    c.set_link(0, 0); // only pool 2 known: the unknown ones count as 20 too, a tie, so the lowest index
    EXPECT_EQ(place_ok(c, req), 0u);
    req.weights = {0, 1, 0}; // and with load as the tie breaker between equal costs
    c.at(0).n_actors = 3;
    c.at(1).n_actors = 1;
    c.at(2).n_actors = 2;
    EXPECT_EQ(place_ok(c, req), 1u);
}

// The example worked through at the top of policies/weighted.c, figure for figure.
TEST(WeightedPolicy, WorkedExampleFromTheComment)
{
    Cluster c;
    c.add("near-host", 1);
    c.add("far-host", 2);
    c.at(0).n_actors = 3;
    c.at(1).n_actors = 1;
    c.set_near(0, {{10, 2e9}});
    c.set_near(1, {{2000, 25e6}});
    const xo_place_near_t a[1] = {{16u << 20, false, false}};
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED, a, 1);
    req.weights = {1, 1, 1};
    EXPECT_EQ(place_ok(c, req), 0u); // -1.0125 against -1.333
    req.weights = {1, 3, 1};
    EXPECT_EQ(place_ok(c, req), 1u); // -3.0125 against -2
}

// Each term of c_ik = latency + bytes / bandwidth moves the choice the way the formula says.
TEST(WeightedPolicy, PairCostTermsMoveTheChoice)
{
    // Pool 0: low latency, low bandwidth (a short slow link); pool 1: high latency, high bandwidth.
    Cluster c;
    c.add("short-slow", 1);
    c.add("long-fast", 2);
    c.set_near(0, {{10, 1e8}});
    c.set_near(1, {{500, 1e10}});
    xo_place_near_t peer[1] = {{0, false, false}};
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED, peer, 1);
    req.weights = {0, 0, 1};
    EXPECT_EQ(place_ok(c, req), 0u); // 8-byte calls: latency alone, 10 < 500
    peer[0].bytes = 1000;            // 10 + 10 = 20 us against 500 + 0.1: still latency
    EXPECT_EQ(place_ok(c, req), 0u);
    peer[0].bytes = 1 << 20; // 10 + 10486 us against 500 + 105: bandwidth now decides
    EXPECT_EQ(place_ok(c, req), 1u);
    c.set_near(1, {{500, 1e8}}); // the same bandwidth on both: latency decides again
    EXPECT_EQ(place_ok(c, req), 0u);
    c.set_near(0, {{10, 5e7}}); // halve pool 0's bandwidth: 20981 us against 10986
    EXPECT_EQ(place_ok(c, req), 1u);
    // A pair with bytes to move but no bandwidth point is unknown: the mean of the known ones (here pool 1's alone).
    c.set_near(0, {{10, 0}});
    EXPECT_EQ(place_ok(c, req), 0u); // a tie (both 10986), so the lower index
}

// Several peers: the costs add up, so the pool nearest the peer with the most bytes wins over the one near two light
// peers; an unknown pair counts as the mean for that peer only.
TEST(WeightedPolicy, CostsToSeveralPeersAddUp)
{
    Cluster c;
    c.add("by-a", 1);
    c.add("by-b-and-c", 2);
    c.add("nowhere", 3);
    const double kFast = 1e10, kSlow = 1e8;
    // peers: a sends 16 MiB per call, b and c 4 KiB.
    c.set_near(0, {{5, kFast}, {100, kSlow}, {100, kSlow}});
    c.set_near(1, {{100, kSlow}, {5, kFast}, {5, kFast}});
    c.set_near(2, {{100, kSlow}, {100, kSlow}, {100, kSlow}});
    const xo_place_near_t peers[3] = {{16u << 20, false, false}, {4096, false, false}, {4096, false, false}};
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED, peers, 3);
    req.weights = {0, 0, 1};
    EXPECT_EQ(place_ok(c, req), 0u);
    const xo_place_near_t light[3] = {{0, false, false}, {4096, false, false}, {4096, false, false}};
    req.near = light; // a sends nothing big: two near peers beat one
    EXPECT_EQ(place_ok(c, req), 1u);
    // Pool 1 does not know peer a: it counts a's mean over pools 0 and 2 (52.5 us), not 0.
    c.set_near(1, {{0, 0}, {5, kFast}, {5, kFast}});
    EXPECT_EQ(place_ok(c, req), 1u);
    req.near = peers; // with 16 MiB to a, the mean of 0 and 2 for a (~84 ms) still loses to pool 0's 2.0 ms
    EXPECT_EQ(place_ok(c, req), 0u);
}

// Live load and free memory still count beside the link term, each with its weight.
TEST(WeightedPolicy, LoadAndMemoryWeighAgainstNearness)
{
    Cluster c;
    c.add_gpu("near-busy", 1, {}, 2 * GiB, 16 * GiB);
    c.add_gpu("far-idle-roomy", 2, {}, 16 * GiB, 16 * GiB);
    c.set_near(0, {{10, 1e10}});
    c.set_near(1, {{1000, 1e8}});
    c.at(0).n_actors = 2;
    c.at(0).n_queued = 4;
    c.at(0).n_busy = 2;
    const xo_place_near_t peer[1] = {{1 << 20, false, false}};
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED, peer, 1);
    req.weights = {0, 0, 1};
    EXPECT_EQ(place_ok(c, req), 0u);
    req.weights = {0, 2, 1}; // load 1 vs 0 weighs 2, link ~0.01 vs 1 weighs 1
    EXPECT_EQ(place_ok(c, req), 1u);
    req.weights = {2, 0, 1}; // memory 0.125 vs 1 weighs 2
    EXPECT_EQ(place_ok(c, req), 1u);
    c.at(0).n_busy = 0;
    c.at(0).n_queued = 0;
    c.at(0).n_actors = 0; // no load anywhere: only nearness is left with load's weight
    req.weights = {0, 2, 1};
    EXPECT_EQ(place_ok(c, req), 0u);
}

TEST(WeightedPolicy, RejectsBadNearArguments)
{
    Cluster c;
    c.add("a", 1);
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED, nullptr, 2);
    place_err(c, req, XO_EINVAL, "2 near peers but no near array");
    c.set_near(0, {{std::nan(""), 1}});
    req = near_request(XO_PLACE_WEIGHTED);
    place_err(c, req, XO_EINVAL, "pair cost");
    c.set_near(0, {{1, -5}});
    place_err(c, req, XO_EINVAL, "pair cost");
    std::vector<xo_place_near_t> many(65);
    c.set_near(0, std::vector<xo_pair_cost_t>(65, {1, 1}));
    req = near_request(XO_PLACE_WEIGHTED, many.data(), many.size());
    place_err(c, req, XO_EINVAL, "65 near peers, at most 64");
}

TEST(WeightedPolicy, RejectsBadWeights)
{
    Cluster c = weighted_cluster();
    xo_place_request_t req = near_request(XO_PLACE_WEIGHTED);
    req.weights = {1, -1, 0};
    place_err(c, req, XO_EINVAL, "weights");
    req.weights = {std::nan(""), 1, 1};
    place_err(c, req, XO_EINVAL, "weights");
}

// Policies are pure: many threads placing over the same views get what one thread gets.
TEST(PolicyThreads, ConcurrentPlacementsAgree)
{
    Cluster c = weighted_cluster();
    const xo_pool_view_t *pools = c.data();
    auto run = [&](std::vector<size_t> *out) {
        for (int k = 0; k < XO_PLACE_KIND_COUNT; k++) {
            xo_place_request_t req = request((xo_place_kind_t)k);
            req.address = "near";
            req.process_index = 2;
            req.label = "gpu";
            req.mark = "m";
            for (uint64_t seed = 0; seed < 200; seed++) {
                req.seed = seed;
                req.cursor = seed;
                size_t chosen = kUnset;
                xo_status_t st = xo__place(pools, c.size(), &req, &chosen);
                out->push_back(st == XO_OK ? chosen : (size_t)st);
            }
        }
    };
    std::vector<size_t> want;
    run(&want);
    std::vector<std::vector<size_t>> got(8);
    std::vector<std::thread> threads;
    for (auto &g : got) threads.emplace_back(run, &g);
    for (auto &t : threads) t.join();
    for (auto &g : got) EXPECT_EQ(g, want);
}

// ---------------------------------------------------------------------------------------------------------------
// Every registered policy over the same edge cases.

class EveryPolicy : public ::testing::TestWithParam<int> {
  protected:
    xo_place_kind_t kind() const { return (xo_place_kind_t)GetParam(); }
    const xo_policy_ops_t *ops() const { return xo__policy_get(kind()); }
    // ADDRESS, MAIN_POOL and PROCESS_INDEX name their pool; every other policy applies the label and memory filters.
    bool filters() const
    {
        return kind() != XO_PLACE_ADDRESS && kind() != XO_PLACE_MAIN_POOL && kind() != XO_PLACE_PROCESS_INDEX;
    }
    // A request every policy can satisfy on four_pools(): pool 3 is a labelled GPU pool with 8 GiB free.
    xo_place_request_t full_request() const
    {
        xo_place_request_t r = request(kind());
        r.address = "127.0.0.1:9000/3";
        r.process_index = 3;
        r.label = "gpu";
        r.mark = "m";
        r.mem_bytes = 1 * GiB;
        r.weights = XO_PLACE_WEIGHTS_DEFAULT;
        r.seed = 99;
        r.cursor = 2;
        r.near = kOnePeer;
        r.n_near = 1;
        return r;
    }
    // Calls xo__place and checks the contract that holds for every outcome.
    xo_status_t place(Cluster &c, const xo_place_request_t &req, size_t *chosen)
    {
        const xo_pool_view_t *pools = c.data();
        std::vector<xo_pool_view_t> before(pools, pools + c.size());
        xo_place_request_t req_before = req;
        xo__error_clear();
        *chosen = kUnset;
        xo_status_t st = xo__place(pools, c.size(), &req, chosen);
        // Pure: neither the views nor the request change.
        for (size_t i = 0; i < before.size(); i++) EXPECT_TRUE(same_view(before[i], pools[i])) << "pool " << i;
        EXPECT_TRUE(same_request(req_before, req));
        if (st == XO_OK) {
            EXPECT_LT(*chosen, c.size());
        } else {
            EXPECT_EQ(*chosen, kUnset);
            EXPECT_GT(std::strlen(xo_last_error()), 0u) << xo_status_name(st) << " without text";
            EXPECT_TRUE(st == XO_EINVAL || st == XO_ENOSLOT || st == XO_ENOIDLESLOT) << xo_status_name(st);
        }
        return st;
    }
};

TEST_P(EveryPolicy, EmptyPoolListIsAClearError)
{
    xo_place_request_t req = full_request();
    Cluster c = four_pools();
    // n == 0 both with no array and with a valid one.
    for (const xo_pool_view_t *pools : {(const xo_pool_view_t *)nullptr, c.data()}) {
        xo__error_clear();
        size_t chosen = kUnset;
        EXPECT_EQ(xo__place(pools, 0, &req, &chosen), XO_ENOSLOT);
        EXPECT_EQ(chosen, kUnset);
        std::string text = xo_last_error();
        EXPECT_NE(text.find(ops()->name), std::string::npos) << text;
        EXPECT_NE(text.find("no pools"), std::string::npos) << text;
    }
}

TEST_P(EveryPolicy, FullRequestSucceedsDeterministicallyAndRespectsFilters)
{
    Cluster c = four_pools();
    xo_place_request_t req = full_request();
    size_t a, b;
    ASSERT_EQ(place(c, req, &a), XO_OK) << xo_last_error();
    ASSERT_EQ(place(c, req, &b), XO_OK);
    EXPECT_EQ(a, b);
    if (filters()) {
        EXPECT_TRUE(has_label(c.at(a), "gpu")) << "chose " << c.at(a).address;
        EXPECT_GE(c.at(a).mem_free, req.mem_bytes);
    } else {
        EXPECT_EQ(a, kind() == XO_PLACE_MAIN_POOL ? 0u : 3u);
    }
}

TEST_P(EveryPolicy, ZeroedRequestNeverCrashes)
{
    Cluster c = four_pools();
    xo_place_request_t req = request(kind());
    size_t chosen;
    xo_status_t st = place(c, req, &chosen);
    // Kinds whose parameter is required say so; the others place somewhere.
    bool needs_param = kind() == XO_PLACE_ADDRESS || kind() == XO_PLACE_RANDOM_LABEL || kind() == XO_PLACE_IDLE_LABEL;
    EXPECT_EQ(st, needs_param ? XO_EINVAL : XO_OK) << xo_last_error();
}

TEST_P(EveryPolicy, OnePoolOnly)
{
    Cluster c;
    c.add_gpu("127.0.0.1:9000/3", 3, {"gpu"}, 8 * GiB);
    size_t chosen;
    xo_status_t st = place(c, full_request(), &chosen);
    if (kind() == XO_PLACE_MAIN_POOL) {
        EXPECT_EQ(st, XO_ENOSLOT);
    } else {
        EXPECT_EQ(chosen, 0u) << xo_status_name(st) << ": " << xo_last_error();
    }
}

TEST_P(EveryPolicy, LabelNobodyHas)
{
    Cluster c = four_pools();
    xo_place_request_t req = full_request();
    req.label = "tpu";
    size_t chosen;
    xo_status_t st = place(c, req, &chosen);
    if (!filters()) {
        EXPECT_EQ(st, XO_OK);
        return;
    }
    EXPECT_EQ(st, kind() == XO_PLACE_IDLE_LABEL ? XO_ENOIDLESLOT : XO_ENOSLOT);
    EXPECT_NE(std::string(xo_last_error()).find("\"tpu\""), std::string::npos) << xo_last_error();
}

TEST_P(EveryPolicy, MemoryNobodyHas)
{
    Cluster c = four_pools();
    xo_place_request_t req = full_request();
    req.mem_bytes = 64 * GiB;
    size_t chosen;
    xo_status_t st = place(c, req, &chosen);
    if (!filters()) {
        EXPECT_EQ(st, XO_OK);
        return;
    }
    EXPECT_EQ(st, XO_ENOSLOT);
    EXPECT_NE(std::string(xo_last_error()).find("largest free: 8589934592 on 127.0.0.1:9000/3"), std::string::npos)
        << xo_last_error();
}

TEST_P(EveryPolicy, MalformedViewIsRejectedBeforeThePolicyRuns)
{
    Cluster c = four_pools();
    c.set_link(3, -2);
    size_t chosen;
    EXPECT_EQ(place(c, full_request(), &chosen), XO_EINVAL);
}

INSTANTIATE_TEST_SUITE_P(Registered, EveryPolicy, ::testing::Range(0, (int)XO_PLACE_KIND_COUNT),
                         [](const ::testing::TestParamInfo<int> &info) {
                             return std::string(xo__policy_get((xo_place_kind_t)info.param)->name);
                         });

} // namespace
