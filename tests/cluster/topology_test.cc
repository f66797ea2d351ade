// cluster/topology.c: cpu lists, the host's topology (checked against sysfs), partitioning, binding.
#include <gtest/gtest.h>

#include <dirent.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/topology.h"
#include "xoscar/xoscar.h"

namespace {

xo_cpuset_t parse_ok(const char *text)
{
    xo_cpuset_t s;
    xo_cpuset_zero(&s);
    EXPECT_EQ(xo__cpuset_parse(text, &s, nullptr, 0), XO_OK) << text << ": " << xo_last_error();
    return s;
}

std::string fmt(const xo_cpuset_t &s)
{
    char buf[512];
    size_t n = xo__cpuset_format(&s, buf, sizeof buf);
    EXPECT_LT(n, sizeof buf);
    return buf;
}

// The error text of a parse that must fail; also checks that err and xo_last_error() agree.
std::string parse_err(const char *text)
{
    xo_cpuset_t s;
    char err[256] = "untouched";
    EXPECT_EQ(xo__cpuset_parse(text, &s, err, sizeof err), XO_EINVAL) << text;
    EXPECT_STREQ(err, xo_last_error());
    return err;
}

std::string read_file(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

struct TopoDeleter {
    void operator()(xo_topology_t *t) const { xo__topology_free(t); }
};
using TopoPtr = std::unique_ptr<xo_topology_t, TopoDeleter>;

TopoPtr load()
{
    xo_topology_t *t = nullptr;
    EXPECT_EQ(xo__topology_load(&t), XO_OK) << xo_last_error();
    return TopoPtr(t);
}

}  // namespace

// ---- cpu lists -------------------------------------------------------------------------------------------------

TEST(CpuList, RoundTrips)
{
    EXPECT_EQ(fmt(parse_ok("0-3,6,8-9")), "0-3,6,8-9");
    EXPECT_EQ(fmt(parse_ok("0")), "0");
    EXPECT_EQ(fmt(parse_ok("9,8,0-3,6,2")), "0-3,6,8-9");    // any order, overlaps merged
    EXPECT_EQ(fmt(parse_ok(" 1 , 2 - 3 ")), "1-3");          // spaces around numbers
    EXPECT_EQ(fmt(parse_ok("63-65,127,128")), "63-65,127-128");  // across bitmask words
    EXPECT_EQ(fmt(parse_ok("8191")), "8191");
    EXPECT_EQ(fmt(parse_ok("0-8191")), "0-8191");
    xo_cpuset_t full = parse_ok("0-8191");
    EXPECT_EQ(xo__cpuset_count(&full), 8192u);
    xo_cpuset_t empty;
    xo_cpuset_zero(&empty);
    EXPECT_EQ(fmt(empty), "");
}

TEST(CpuList, FormatTruncatesLikeSnprintf)
{
    xo_cpuset_t s = parse_ok("0-3,6,8-9");
    char buf[4];
    EXPECT_EQ(xo__cpuset_format(&s, buf, sizeof buf), 9u);
    EXPECT_STREQ(buf, "0-3");
    EXPECT_EQ(xo__cpuset_format(&s, nullptr, 0), 9u);
}

TEST(CpuList, BadInputNamesTokenAndColumn)
{
    std::string e = parse_err("0-3,x");
    EXPECT_NE(e.find("bad token \"x\" at column 5"), std::string::npos) << e;
    e = parse_err("1,,2");
    EXPECT_NE(e.find("empty item at column 3"), std::string::npos) << e;
    e = parse_err("1,2,");
    EXPECT_NE(e.find("empty item at column 5"), std::string::npos) << e;
    e = parse_err("2,5-3");
    EXPECT_NE(e.find("reversed range \"5-3\" at column 3"), std::string::npos) << e;
    e = parse_err("0,3-");
    EXPECT_NE(e.find("bad range \"3-\" at column 3"), std::string::npos) << e;
    e = parse_err("0-7:2");
    EXPECT_NE(e.find("bad token \"0-7:2\" at column 1"), std::string::npos) << e;
    e = parse_err("0,-1");
    EXPECT_NE(e.find("bad token \"-1\" at column 3"), std::string::npos) << e;
    e = parse_err("1,8192");
    EXPECT_NE(e.find("\"8192\" at column 3 is out of range (at most 8191)"), std::string::npos) << e;
    e = parse_err("99999999999999999999");  // saturates instead of wrapping
    EXPECT_NE(e.find("out of range"), std::string::npos) << e;
    e = parse_err("");
    EXPECT_NE(e.find("empty"), std::string::npos) << e;
    e = parse_err("  ");
    EXPECT_NE(e.find("empty"), std::string::npos) << e;
}

TEST(CpuList, SetOperations)
{
    xo_cpuset_t a = parse_ok("0-3,100"), b = parse_ok("3-5"), c = parse_ok("6");
    EXPECT_TRUE(xo__cpuset_intersects(&a, &b));
    EXPECT_FALSE(xo__cpuset_intersects(&a, &c));
    std::vector<int> seen;
    for (int x = xo__cpuset_next(&a, -1); x >= 0; x = xo__cpuset_next(&a, x)) seen.push_back(x);
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 100}));
    xo_cpuset_t u = a;
    xo__cpuset_or(&u, &b);
    EXPECT_EQ(fmt(u), "0-5,100");
    xo__cpuset_and(&u, &b);
    EXPECT_TRUE(xo__cpuset_equal(&u, &b));
    EXPECT_TRUE(xo__cpuset_is_subset(&b, &u));
    EXPECT_FALSE(xo__cpuset_is_subset(&a, &b));
}

// ---- the real topology -----------------------------------------------------------------------------------------

TEST(Topology, MatchesThisHost)
{
    TopoPtr t = load();
    ASSERT_TRUE(t);
    ASSERT_GE(t->n_cores, 1u);
    ASSERT_GE(t->n_numa, 1u);

    // Every CPU this process may run on (what nproc counts: its affinity) exists.
    xo_cpuset_t mine;
    ASSERT_EQ(xo__bound_cpus(&mine), XO_OK);
    char err[256] = "";
    EXPECT_EQ(xo__topology_check_cpuset(t.get(), &mine, err, sizeof err), XO_OK) << err;
    EXPECT_GE(t->n_pus, xo__cpuset_count(&mine));

    // Cores partition the PUs, and each core matches the kernel's list of its hyperthreads.
    xo_cpuset_t all;
    xo_cpuset_zero(&all);
    size_t pus = 0;
    for (size_t i = 0; i < t->n_cores; i++) {
        const xo_cpuset_t &core = t->cores[i].pus;
        EXPECT_FALSE(xo__cpuset_intersects(&all, &core)) << "core " << i;
        xo__cpuset_or(&all, &core);
        pus += xo__cpuset_count(&core);
        int first = xo__cpuset_next(&core, -1);
        std::string sib = read_file("/sys/devices/system/cpu/cpu" + std::to_string(first) +
                                    "/topology/thread_siblings_list");
        if (!sib.empty()) {
            xo_cpuset_t s = parse_ok(sib.c_str());
            xo__cpuset_and(&s, &t->pus);  // siblings the cgroup does not allow are not in the topology
            EXPECT_EQ(fmt(s), fmt(core)) << "core " << i;
        }
        for (int c = first; c >= 0; c = xo__cpuset_next(&core, c)) {
            EXPECT_EQ(xo__topology_pu_numa(t.get(), c), t->cores[i].numa);
            EXPECT_GE(t->cores[i].numa, 0) << "PU " << c << " has no NUMA node";
            // The kernel lists a node<N> directory under the CPU for its node.
            if (t->cores[i].numa >= 0) {
                std::string node_dir = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/node" +
                                       std::to_string(t->cores[i].numa);
                if (access("/sys/devices/system/node", F_OK) == 0) {
                    EXPECT_EQ(access(node_dir.c_str(), F_OK), 0) << node_dir;
                }
            }
        }
    }
    EXPECT_TRUE(xo__cpuset_equal(&all, &t->pus));
    EXPECT_EQ(pus, t->n_pus);
    EXPECT_EQ(xo__topology_pu_numa(t.get(), 4096), -1);
}

TEST(Topology, CheckNamesAMissingCpu)
{
    TopoPtr t = load();
    ASSERT_TRUE(t);
    xo_cpuset_t s = parse_ok("0,4096");
    char err[256] = "";
    EXPECT_EQ(xo__topology_check_cpuset(t.get(), &s, err, sizeof err), XO_EINVAL);
    EXPECT_NE(std::string(err).find("CPU 4096 does not exist on this host (its CPUs are "), std::string::npos)
        << err;
    EXPECT_STREQ(err, xo_last_error());
    xo_cpuset_t empty;
    xo_cpuset_zero(&empty);
    EXPECT_EQ(xo__topology_check_cpuset(t.get(), &empty, nullptr, 0), XO_EINVAL);
}

TEST(Topology, PartitionOnePoolPerCore)
{
    TopoPtr t = load();
    ASSERT_TRUE(t);
    size_t n = t->n_cores;
    std::vector<xo_cpuset_t> sets(n);
    ASSERT_EQ(xo__topology_partition(t.get(), nullptr, n, sets.data()), XO_OK) << xo_last_error();
    xo_cpuset_t all;
    xo_cpuset_zero(&all);
    for (size_t i = 0; i < n; i++) {
        EXPECT_FALSE(xo__cpuset_intersects(&all, &sets[i])) << "pool " << i;
        EXPECT_TRUE(xo__cpuset_equal(&sets[i], &t->cores[i].pus)) << "pool " << i << " is not exactly one core";
        xo__cpuset_or(&all, &sets[i]);
    }
    EXPECT_TRUE(xo__cpuset_equal(&all, &t->pus));
    ASSERT_EQ(xo__topology_partition(t.get(), nullptr, 1, sets.data()), XO_OK);
    EXPECT_TRUE(xo__cpuset_equal(&sets[0], &t->pus));
}

// ---- partitioning a made-up machine: 6 cores of 2 PUs, cores 0-2 on node 0 and 3-5 on node 1 ------------------

class Partition : public ::testing::Test {
  protected:
    void SetUp() override
    {
        xo_cpuset_t cores[6];
        int numa[6];
        for (int i = 0; i < 6; i++) {
            xo_cpuset_zero(&cores[i]);
            xo_cpuset_add(&cores[i], i);       // PU i and its sibling i + 6, as Linux numbers hyperthreads
            xo_cpuset_add(&cores[i], i + 6);
            numa[i] = i < 3 ? 0 : 1;
        }
        xo_topology_t *raw = nullptr;
        ASSERT_EQ(xo__topology_build(6, cores, numa, &raw), XO_OK) << xo_last_error();
        t.reset(raw);
    }
    std::vector<std::string> split(size_t n, const char *within = nullptr)
    {
        std::vector<xo_cpuset_t> sets(n);
        xo_cpuset_t w;
        if (within) w = parse_ok(within);
        EXPECT_EQ(xo__topology_partition(t.get(), within ? &w : nullptr, n, sets.data()), XO_OK) << xo_last_error();
        std::vector<std::string> out;
        for (auto &s : sets) out.push_back(fmt(s));
        return out;
    }
    TopoPtr t;
};

TEST_F(Partition, BuiltTopology)
{
    EXPECT_EQ(t->n_pus, 12u);
    EXPECT_EQ(t->n_numa, 2u);
    EXPECT_EQ(xo__topology_pu_numa(t.get(), 7), 0);
    EXPECT_EQ(xo__topology_pu_numa(t.get(), 10), 1);
    xo_cpuset_t bad[2];
    xo_cpuset_zero(&bad[0]);
    xo_cpuset_zero(&bad[1]);
    xo_cpuset_add(&bad[0], 1);
    xo_cpuset_add(&bad[1], 1);
    xo_topology_t *raw = nullptr;
    EXPECT_EQ(xo__topology_build(2, bad, nullptr, &raw), XO_EINVAL);  // a PU in two cores
    xo_cpuset_zero(&bad[1]);
    EXPECT_EQ(xo__topology_build(2, bad, nullptr, &raw), XO_EINVAL);  // a core with no PU
    EXPECT_EQ(raw, nullptr);
}

TEST_F(Partition, OnePerCore)
{
    EXPECT_EQ(split(6), (std::vector<std::string>{"0,6", "1,7", "2,8", "3,9", "4,10", "5,11"}));
}

TEST_F(Partition, FewerPoolsGetContiguousCoresOnOneNode)
{
    EXPECT_EQ(split(2), (std::vector<std::string>{"0-2,6-8", "3-5,9-11"}));   // one NUMA node each
    EXPECT_EQ(split(4), (std::vector<std::string>{"0-1,6-7", "2-3,8-9", "4,10", "5,11"}));  // sizes 2,2,1,1
    EXPECT_EQ(split(1), (std::vector<std::string>{"0-11"}));
}

TEST_F(Partition, MorePoolsShareCoresRoundRobin)
{
    std::vector<std::string> s = split(8);
    EXPECT_EQ(s, (std::vector<std::string>{"0,6", "1,7", "2,8", "3,9", "4,10", "5,11", "0,6", "1,7"}));
}

TEST_F(Partition, WithinASet)
{
    // Cores with a PU in 2-4 are 2, 3, 4; only those PUs are given out.
    EXPECT_EQ(split(3, "2-4"), (std::vector<std::string>{"2", "3", "4"}));
    EXPECT_EQ(split(2, "0-1,6-7,9"), (std::vector<std::string>{"0-1,6-7", "9"}));
}

// Pools bound near their devices: two GPUs on each node, one pool per GPU; pools sharing a node split its cores.
TEST_F(Partition, NearTheirDevices)
{
    auto near_split = [&](std::vector<const char *> near_lists) {
        std::vector<xo_cpuset_t> near, sets(near_lists.size());
        for (const char *s : near_lists) near.push_back(parse_ok(s));
        EXPECT_EQ(xo__topology_partition_near(t.get(), near.size(), near.data(), sets.data()), XO_OK) << xo_last_error();
        std::vector<std::string> out;
        for (auto &s : sets) out.push_back(fmt(s));
        return out;
    };
    EXPECT_EQ(near_split({"0-2,6-8", "0-2,6-8", "3-5,9-11", "3-5,9-11"}),
              (std::vector<std::string>{"0-1,6-7", "2,8", "3-4,9-10", "5,11"}));
    // Interleaved order: each pool still gets cores of its own node.
    EXPECT_EQ(near_split({"3-5,9-11", "0-2,6-8", "3-5,9-11"}), (std::vector<std::string>{"3-4,9-10", "0-2,6-8", "5,11"}));
    EXPECT_EQ(near_split({"3-5,9-11"}), (std::vector<std::string>{"3-5,9-11"}));
    // More pools than cores near the device: they share those cores, and never spill to the other node.
    EXPECT_EQ(near_split({"0-1", "0-1", "0-1"}), (std::vector<std::string>{"0", "1", "0"}));

    std::vector<xo_cpuset_t> near(2), sets(2);
    near[0] = parse_ok("0-2");
    xo_cpuset_zero(&near[1]);
    EXPECT_EQ(xo__topology_partition_near(t.get(), 2, near.data(), sets.data()), XO_EINVAL);
    near[1] = parse_ok("40-41"); // not CPUs of this machine
    EXPECT_EQ(xo__topology_partition_near(t.get(), 2, near.data(), sets.data()), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("\"40-41\""), std::string::npos) << xo_last_error();
}

TEST_F(Partition, Errors)
{
    xo_cpuset_t sets[1];
    EXPECT_EQ(xo__topology_partition(t.get(), nullptr, 0, sets), XO_EINVAL);
    xo_cpuset_t w = parse_ok("100");
    EXPECT_EQ(xo__topology_partition(t.get(), &w, 1, sets), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("no core"), std::string::npos) << xo_last_error();
    xo_cpuset_t near;
    EXPECT_EQ(xo__topology_nearby_cpus_of_pci(t.get(), "0000:00:00.0", &near), XO_ENOTSUP);
}

// ---- binding ---------------------------------------------------------------------------------------------------

namespace {
void *report_affinity(void *arg)
{
    xo_cpuset_t *s = static_cast<xo_cpuset_t *>(arg);
    if (xo__bound_cpus(s) != XO_OK) xo_cpuset_zero(s);
    return nullptr;
}
}  // namespace

// A forked child binds itself to one CPU; the kernel shows it in /proc/<pid>/status, and a thread the child starts
// afterwards inherits it.
TEST(Bind, ChildProcessBindsToOneCpu)
{
    xo_cpuset_t mine;
    ASSERT_EQ(xo__bound_cpus(&mine), XO_OK);
    int target = -1;
    for (int c = xo__cpuset_next(&mine, -1); c >= 0; c = xo__cpuset_next(&mine, c)) target = c;  // the last one
    ASSERT_GE(target, 0);

    int ready[2], done[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(done), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        xo_cpuset_t one;
        xo_cpuset_zero(&one);
        xo_cpuset_add(&one, target);
        int code = 0;
        if (xo__bind_self_to(&one) != XO_OK) code = 1;
        xo_cpuset_t seen;
        pthread_t th;
        if (!code && (pthread_create(&th, nullptr, report_affinity, &seen) != 0 || pthread_join(th, nullptr) != 0))
            code = 2;
        if (!code && !xo__cpuset_equal(&seen, &one)) code = 3;
        char b = (char)code;
        if (write(ready[1], &b, 1) != 1) _exit(4);
        if (read(done[0], &b, 1) != 1) _exit(5);  // stay alive while the parent reads /proc
        _exit(code);
    }
    close(ready[1]);
    close(done[0]);
    char b = 99;
    ASSERT_EQ(read(ready[0], &b, 1), 1);
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line, allowed;
    while (std::getline(status, line))
        if (line.rfind("Cpus_allowed_list:", 0) == 0) allowed = line.substr(line.find(':') + 1);
    ASSERT_EQ(write(done[1], &b, 1), 1);
    int ws = 0;
    ASSERT_EQ(waitpid(pid, &ws, 0), pid);
    ASSERT_TRUE(WIFEXITED(ws));
    EXPECT_EQ(WEXITSTATUS(ws), 0) << "child: 1 bind failed, 2 thread failed, 3 thread did not inherit the binding";
    EXPECT_EQ(fmt(parse_ok(allowed.c_str())), std::to_string(target)) << "Cpus_allowed_list:" << allowed;
    close(ready[0]);
    close(done[1]);
}

TEST(Bind, Errors)
{
    xo_cpuset_t empty;
    xo_cpuset_zero(&empty);
    EXPECT_EQ(xo__bind_self_to(&empty), XO_EINVAL);
    // A CPU that exists nowhere: the kernel refuses, and this thread's binding is unchanged.
    xo_cpuset_t before, after, far = parse_ok("8000");
    ASSERT_EQ(xo__bound_cpus(&before), XO_OK);
    EXPECT_EQ(xo__bind_self_to(&far), XO_ESYS);
    EXPECT_NE(std::string(xo_last_error()).find("sched_setaffinity to CPUs 8000 failed"), std::string::npos)
        << xo_last_error();
    ASSERT_EQ(xo__bound_cpus(&after), XO_OK);
    EXPECT_TRUE(xo__cpuset_equal(&before, &after));
}

// ---- PCI -------------------------------------------------------------------------------------------------------

TEST(Topology, NearbyCpusOfPci)
{
    TopoPtr t = load();
    ASSERT_TRUE(t);
    xo_cpuset_t near;
    EXPECT_EQ(xo__topology_nearby_cpus_of_pci(t.get(), "not-a-bus-id", &near), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("malformed"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo__topology_nearby_cpus_of_pci(t.get(), "ffff:ff:1f.7", &near), XO_EINVAL);
    EXPECT_NE(std::string(xo_last_error()).find("no PCI device ffff:ff:1f.7"), std::string::npos) << xo_last_error();

    // A device of this host: its nearby CPUs are PUs of the host and include what the kernel calls its local CPUs.
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d) GTEST_SKIP() << "no /sys/bus/pci/devices";
    std::string dev;
    while (struct dirent *e = readdir(d))
        if (e->d_name[0] != '.') {
            dev = e->d_name;
            break;
        }
    closedir(d);
    if (dev.empty()) GTEST_SKIP() << "no PCI device on this host";
    ASSERT_EQ(xo__topology_nearby_cpus_of_pci(t.get(), dev.c_str(), &near), XO_OK) << dev << ": " << xo_last_error();
    EXPECT_GT(xo__cpuset_count(&near), 0u);
    EXPECT_TRUE(xo__cpuset_is_subset(&near, &t->pus));
    std::string local = read_file("/sys/bus/pci/devices/" + dev + "/local_cpulist");
    if (!local.empty()) {
        xo_cpuset_t l = parse_ok(local.c_str());
        xo__cpuset_and(&l, &t->pus);
        EXPECT_TRUE(xo__cpuset_is_subset(&l, &near)) << dev << " local " << fmt(l) << " nearby " << fmt(near);
    }
}
