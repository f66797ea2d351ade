// cluster/cluster_file.c and cluster_host.c: the cluster file's keys, defaults, errors (file:line:column), dump,
// key reference, and the per-host helpers (CPU check, xo_host_config_t, is-local).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <glob.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/cluster_file.h"
#include "xoscar/gpu.h"
#include "xoscar/xoscar.h"

namespace {

struct ClusterDeleter {
    void operator()(xo_cluster_t *c) const { xo__cluster_free(c); }
};
using ClusterPtr = std::unique_ptr<xo_cluster_t, ClusterDeleter>;

struct HostConfigDeleter {
    void operator()(xo_cluster_host_config_t *h) const { xo__cluster_host_config_free(h); }
};
using HostConfigPtr = std::unique_ptr<xo_cluster_host_config_t, HostConfigDeleter>;

struct TopoDeleter {
    void operator()(xo_topology_t *t) const { xo__topology_free(t); }
};
using TopoPtr = std::unique_ptr<xo_topology_t, TopoDeleter>;

xo_cluster_t *const kUntouched = reinterpret_cast<xo_cluster_t *>(0x1);

ClusterPtr load_ok(const std::string &text, const char *name = "test.yaml")
{
    xo_cluster_t *c = nullptr;
    xo_cluster_error_t err{};
    xo_status_t st = xo__cluster_load_string(text.c_str(), name, &c, &err);
    EXPECT_EQ(st, XO_OK) << err.text;
    return ClusterPtr(st == XO_OK ? c : nullptr);
}

// Loads text that must fail with XO_ECONFIG; checks that nothing is returned and that err and xo_last_error() agree.
xo_cluster_error_t load_err(const std::string &text, const char *name = "test.yaml",
                            xo_status_t expected = XO_ECONFIG)
{
    xo_cluster_t *c = kUntouched;
    xo_cluster_error_t err{};
    EXPECT_EQ(xo__cluster_load_string(text.c_str(), name, &c, &err), expected) << text;
    EXPECT_EQ(c, kUntouched);
    EXPECT_EQ(err.status, expected);
    EXPECT_STREQ(err.text, xo_last_error());
    return err;
}

bool contains(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

#define EXPECT_HAS(text, needle) EXPECT_TRUE(contains(text, needle)) << "text: " << (text) << "\nwanted: " << (needle)

std::string read_all(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string dump(const xo_cluster_t *c)
{
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    EXPECT_EQ(xo__cluster_dump(c, f), 0);
    fclose(f);
    std::string s(buf, len);
    free(buf);
    return s;
}

// A temporary directory, removed with its files.
struct TempDir {
    std::string path;
    TempDir()
    {
        char tmpl[] = "/tmp/xo_cluster_test.XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { (void)!system(("rm -rf '" + path + "'").c_str()); }
    std::string write(const std::string &name, const std::string &text) const
    {
        std::string p = path + "/" + name;
        std::ofstream(p) << text;
        return p;
    }
};

// An 8-core host, one PU per core, PUs 0-7.
TopoPtr eight_cores()
{
    xo_cpuset_t cores[8];
    for (int i = 0; i < 8; i++) {
        xo_cpuset_zero(&cores[i]);
        xo_cpuset_add(&cores[i], i);
    }
    xo_topology_t *t = nullptr;
    EXPECT_EQ(xo__topology_build(8, cores, nullptr, &t), XO_OK) << xo_last_error();
    return TopoPtr(t);
}

const char kFull[] = R"(name: prod
secret: "s3cret!"
modules: [lib/a.so, /opt/b.so, ./c.so]
restart: actors
log_level: debug
transport:
  prefer: [tcp, shm]
  ucx_tls: rc,cuda_ipc
placement:
  policy: RandomSubPool
  weights: {mem: 2, load: 0.5, link: 0}
hosts:
  - name: head
    address: 10.0.0.1
    port: 7200
    launcher: local
    main: {threads: 3, labels: [head, ctl]}
    pools:
      - cpus: "0-3"
        count: 2
        gpu: 1
        labels: [gpu, fast]
        threads: 2
      - cpus: "6"
  - name: w1
    address: w1.example.com
    launcher: none
    pools: []
  - name: v6
    address: "::1"
    port: 0
)";

// ---- valid files ------------------------------------------------------------------------------------------------

TEST(ClusterFile, FullExampleParsesWithExpectedValues)
{
    ClusterPtr c = load_ok(kFull, "/etc/xo/prod.yaml");
    ASSERT_TRUE(c);
    EXPECT_STREQ(c->path, "/etc/xo/prod.yaml");
    EXPECT_STREQ(c->name, "prod");
    EXPECT_STREQ(c->secret, "s3cret!");
    EXPECT_EQ(c->secret_len, 7u);
    EXPECT_EQ(c->secret_file, nullptr);
    ASSERT_EQ(c->n_modules, 3u);
    EXPECT_EQ(c->restart, XO_RESTART_ACTORS);
    EXPECT_EQ(c->log_level, XO_LOG_DEBUG);
    ASSERT_EQ(c->transport.n_prefer, 2u);
    EXPECT_EQ(c->transport.prefer[0], XO_CLUSTER_TRANSPORT_TCP);
    EXPECT_EQ(c->transport.prefer[1], XO_CLUSTER_TRANSPORT_SHM);
    EXPECT_STREQ(c->transport.ucx_tls, "rc,cuda_ipc");
    EXPECT_STREQ(c->placement.policy, "random_sub_pool");  // Xoscar's name, made canonical
    EXPECT_EQ(c->placement.kind, XO_PLACE_RANDOM_SUB_POOL);
    EXPECT_EQ(c->placement.weights.mem, 2.0);
    EXPECT_EQ(c->placement.weights.load, 0.5);
    EXPECT_EQ(c->placement.weights.link, 0.0);

    ASSERT_EQ(c->n_hosts, 3u);
    const xo_cluster_host_t &h = c->hosts[0];
    EXPECT_STREQ(h.name, "head");
    EXPECT_STREQ(h.address, "10.0.0.1");
    EXPECT_EQ(h.port, 7200u);
    EXPECT_EQ(h.launcher, XO_LAUNCHER_LOCAL);
    EXPECT_EQ(h.main.threads, 3u);
    ASSERT_EQ(h.main.n_labels, 2u);
    EXPECT_STREQ(h.main.labels[1], "ctl");
    EXPECT_EQ(h.mark.line, 13);
    EXPECT_EQ(h.mark.column, 5);
    ASSERT_EQ(h.n_pools, 2u);
    EXPECT_STREQ(h.pools[0].cpus, "0-3");
    EXPECT_EQ(h.pools[0].cpus_mark.line, 19);
    EXPECT_EQ(h.pools[0].cpus_mark.column, 15);
    EXPECT_EQ(h.pools[0].count, 2);
    EXPECT_EQ(h.pools[0].gpu, 1);
    ASSERT_EQ(h.pools[0].n_labels, 2u);
    EXPECT_STREQ(h.pools[0].labels[0], "gpu");
    EXPECT_STREQ(h.pools[0].labels[1], "fast");
    EXPECT_EQ(h.pools[0].threads, 2u);
    // An explicit cpu list without a count is one pool; the rest are defaults.
    EXPECT_STREQ(h.pools[1].cpus, "6");
    EXPECT_EQ(h.pools[1].count, 1);
    EXPECT_EQ(h.pools[1].gpu, -1);
    EXPECT_EQ(h.pools[1].n_labels, 0u);
    EXPECT_EQ(h.pools[1].threads, 0u);

    EXPECT_STREQ(c->hosts[1].address, "w1.example.com");
    EXPECT_EQ(c->hosts[1].port, 7100u);
    EXPECT_EQ(c->hosts[1].launcher, XO_LAUNCHER_NONE);
    EXPECT_EQ(c->hosts[1].n_pools, 0u);
    EXPECT_STREQ(c->hosts[2].address, "::1");
    EXPECT_EQ(c->hosts[2].port, 0u);

    EXPECT_EQ(xo__cluster_find_host(c.get(), "w1"), 1);
    EXPECT_EQ(xo__cluster_find_host(c.get(), "v6"), 2);
    EXPECT_EQ(xo__cluster_find_host(c.get(), "nope"), -1);
}

TEST(ClusterFile, EveryKeyHasItsDefault)
{
    ClusterPtr c = load_ok("secret: x\nhosts: [{name: a, address: localhost}]\n");
    ASSERT_TRUE(c);
    EXPECT_STREQ(c->name, "xoscar");
    EXPECT_EQ(c->n_modules, 0u);
    EXPECT_EQ(c->restart, XO_RESTART_PROCESS);
    EXPECT_EQ(c->log_level, XO_LOG_WARN);
    ASSERT_EQ(c->transport.n_prefer, 4u);
    EXPECT_EQ(c->transport.prefer[0], XO_CLUSTER_TRANSPORT_SHM);
    EXPECT_EQ(c->transport.prefer[1], XO_CLUSTER_TRANSPORT_UNIX);
    EXPECT_EQ(c->transport.prefer[2], XO_CLUSTER_TRANSPORT_TCP); // TCP before UCX by default: measured faster here
    EXPECT_EQ(c->transport.prefer[3], XO_CLUSTER_TRANSPORT_UCX);
    EXPECT_STREQ(c->transport.ucx_tls, "");
    EXPECT_STREQ(c->placement.policy, "round_robin");
    EXPECT_EQ(c->placement.kind, XO_PLACE_ROUND_ROBIN);
    EXPECT_EQ(c->placement.weights.mem, 1.0);
    EXPECT_EQ(c->placement.weights.load, 1.0);
    EXPECT_EQ(c->placement.weights.link, 1.0);
    const xo_cluster_host_t &h = c->hosts[0];
    EXPECT_EQ(h.port, (unsigned)XO_CLUSTER_DEFAULT_PORT);
    EXPECT_EQ(h.launcher, XO_LAUNCHER_SSH);
    EXPECT_EQ(h.main.threads, 1u);
    EXPECT_EQ(h.main.n_labels, 0u);
    ASSERT_EQ(h.n_pools, 1u);  // one entry: one sub pool per core
    EXPECT_EQ(h.pools[0].cpus, nullptr);
    EXPECT_EQ(h.pools[0].count, -1);
    EXPECT_EQ(h.pools[0].gpu, -1);
    EXPECT_EQ(h.pools[0].threads, 0u);
    EXPECT_EQ(h.pools[0].mark.line, 0);  // not in the file
}

TEST(ClusterFile, RelativeModulePathsAreResolvedAgainstTheFilesDirectory)
{
    TempDir d;
    std::string path = d.write("c.yaml", "secret: x\nmodules: [m1.so, ./sub/m2.so, /abs/m3.so]\n"
                                         "hosts: [{name: a, address: 127.0.0.1}]\n");
    xo_cluster_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_load(path.c_str(), &raw, &err), XO_OK) << err.text;
    ClusterPtr c(raw);
    char *real = realpath(d.path.c_str(), nullptr);
    std::string dir = real;
    free(real);
    EXPECT_EQ(std::string(c->dir), dir);
    ASSERT_EQ(c->n_modules, 3u);
    EXPECT_EQ(std::string(c->modules[0]), dir + "/m1.so");
    EXPECT_EQ(std::string(c->modules[1]), dir + "/sub/m2.so");
    EXPECT_STREQ(c->modules[2], "/abs/m3.so");

    // From a string, the directory of the name (relative to the current directory) is the base.
    ClusterPtr s = load_ok("secret: x\nmodules: [m.so]\nhosts: [{name: a, address: 127.0.0.1}]\n",
                           "/nonexistent/dir/c.yaml");
    ASSERT_TRUE(s);
    EXPECT_STREQ(s->modules[0], "/nonexistent/dir/m.so");
}

TEST(ClusterFile, SecretFileIsReadRelativeToTheFile)
{
    TempDir d;
    d.write("key", "top secret\n\n");
    std::string path = d.write("c.yaml", "secret_file: key\nhosts: [{name: a, address: 127.0.0.1}]\n");
    xo_cluster_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_load(path.c_str(), &raw, &err), XO_OK) << err.text;
    ClusterPtr c(raw);
    EXPECT_STREQ(c->secret, "top secret");  // trailing white space dropped
    EXPECT_EQ(c->secret_len, 10u);
    char *real = realpath((d.path + "/key").c_str(), nullptr);
    EXPECT_STREQ(c->secret_file, real);
    free(real);
}

TEST(ClusterFile, MissingSecretFileIsAnErrorAtItsValue)
{
    TempDir d;
    xo_cluster_error_t err = load_err("hosts: [{name: a, address: 127.0.0.1}]\nsecret_file:   nokey\n",
                                      (d.path + "/c.yaml").c_str());
    EXPECT_EQ(err.line, 2);
    EXPECT_EQ(err.column, 16);
    EXPECT_HAS(err.text, d.path + "/c.yaml:2:16: secret_file: cannot read the secret file '");
    EXPECT_HAS(err.text, "/nokey': No such file or directory");

    d.write("empty", "\n \n");
    err = load_err("secret_file: empty\nhosts: [{name: a, address: 127.0.0.1}]\n", (d.path + "/c.yaml").c_str());
    EXPECT_HAS(err.text, "c.yaml:1:14: secret_file: the secret file '");
    EXPECT_HAS(err.text, "' is empty");

    err = load_err("secret_file: .\nhosts: [{name: a, address: 127.0.0.1}]\n", (d.path + "/c.yaml").c_str());
    EXPECT_HAS(err.text, "not a regular file");
}

TEST(ClusterFile, SecretRules)
{
    xo_cluster_error_t err = load_err("hosts: [{name: a, address: 127.0.0.1}]\n");
    EXPECT_EQ(err.line, 1);
    EXPECT_EQ(err.column, 1);
    EXPECT_HAS(err.text, "test.yaml:1:1: missing key 'secret' or 'secret_file' in the cluster");

    err = load_err("secret: a\nhosts: [{name: a, address: 127.0.0.1}]\nsecret_file: /etc/hostname\n");
    EXPECT_HAS(err.text, "test.yaml:3:14: secret_file: give either 'secret' or 'secret_file', not both");

    err = load_err("secret: \"***\"\nhosts: [{name: a, address: 127.0.0.1}]\n");
    EXPECT_HAS(err.text, "test.yaml:1:9: secret: '***' is what `xoscar config --dump` writes");

    err = load_err("secret: ''\nhosts: [{name: a, address: 127.0.0.1}]\n");
    EXPECT_HAS(err.text, "test.yaml:1:9: secret: expected a non-empty string, got ''");
}

// ---- errors, each with its place --------------------------------------------------------------------------------

TEST(ClusterFile, UnknownKeyNamesTheKeysExpected)
{
    xo_cluster_error_t err = load_err(R"(secret: x
hosts:
  - name: a
    address: 10.0.0.1
    pools:
      - cpus: "0-1"
      - cpu: "2-3"
)",
                                      "cluster.yaml");
    EXPECT_EQ(err.line, 7);
    EXPECT_EQ(err.column, 9);
    EXPECT_STREQ(err.text, "cluster.yaml:7:9: hosts[0].pools[1]: unknown key 'cpu' in a pool (expected one of: "
                           "cpus, count, gpu, device, labels, threads, env)");

    err = load_err("secret: x\nhost: []\n");
    EXPECT_STREQ(err.text, "test.yaml:2:1: unknown key 'host' in the cluster (expected one of: name, secret, "
                           "secret_file, modules, restart, restart_intensity, log_level, transport, placement, hosts)");
}

TEST(ClusterFile, WrongTypes)
{
    xo_cluster_error_t err = load_err("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    port: abc\n");
    EXPECT_EQ(err.line, 5);
    EXPECT_EQ(err.column, 11);
    EXPECT_STREQ(err.text, "test.yaml:5:11: hosts[0].port: expected an integer, got 'abc'");

    err = load_err("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    port: 70000\n");
    EXPECT_STREQ(err.text, "test.yaml:5:11: hosts[0].port: expected an integer from 0 to 65535, got '70000'");

    err = load_err("secret: x\nhosts: [{name: a, address: 10.0.0.1, pools: [{count: many}]}]\n");
    EXPECT_HAS(err.text, "test.yaml:2:54: hosts[0].pools[0].count: expected an integer from 0 to 256, 'auto' or "
                         "'gpus', got 'many'");

    err = load_err("secret: x\nrestart: always\nhosts: [{name: a, address: 10.0.0.1}]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:10: restart: expected one of: none, process, actors; got 'always'");

    err = load_err("secret: x\nhosts: {name: a}\n");
    EXPECT_STREQ(err.text, "test.yaml:2:8: hosts: expected a list of host, got a mapping");

    err = load_err("secret: x\nhosts: [a]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:9: hosts[0]: expected a host (a mapping of key: value), got 'a'");

    err = load_err("secret: x\nhosts: [{name: a, address: 10.0.0.1, main: {labels: gpu}}]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:53: hosts[0].main.labels: expected a list of strings, got 'gpu'");

    err = load_err("secret: x\nhosts: [{name: a, address: 10.0.0.1, pools: [{labels: ['a,b']}]}]\n");
    EXPECT_HAS(err.text, "hosts[0].pools[0].labels[0]: expected a label (1 to 64 characters, no comma, no space)");

    err = load_err("secret: x\nplacement: {weights: {mem: -1}}\nhosts: [{name: a, address: 10.0.0.1}]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:28: placement.weights.mem: expected a number >= 0, got '-1'");

    err = load_err("secret: x\nname:\nhosts: [{name: a, address: 10.0.0.1}]\n");
    EXPECT_HAS(err.text, "name: expected a string, got nothing (null)");

    err = load_err("secret: x\nhosts: [{name: 'a b', address: 10.0.0.1}]\n");
    EXPECT_HAS(err.text, "test.yaml:2:16: hosts[0].name: expected a name of letters, digits");

    err = load_err("secret: x\nhosts: [{name: a, address: '10.0.0.1:7100'}]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:28: hosts[0].address: expected an IP address or a host name (without a "
                           "port: the port goes in 'port'), got '10.0.0.1:7100'");
}

TEST(ClusterFile, DeviceKey)
{
    const std::string head = "secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    pools:\n";
    ClusterPtr c = load_ok(head + "      - {device: auto}\n      - {device: host}\n      - {device: 'host:2'}\n"
                                  "      - {device: 'cuda:1'}\n      - {gpu: 3}\n      - {}\n");
    ASSERT_TRUE(c);
    const xo_cluster_pool_t *p = c->hosts[0].pools;
    EXPECT_STREQ(p[0].device, "auto");
    EXPECT_EQ(p[0].device_mark.line, 6);
    EXPECT_EQ(p[0].device_mark.column, 18);
    EXPECT_STREQ(p[1].device, "host");
    EXPECT_STREQ(p[2].device, "host:2");
    EXPECT_STREQ(p[3].device, "cuda:1");
    EXPECT_EQ(p[4].gpu, 3);
    EXPECT_STREQ(p[4].device, "none");
    EXPECT_EQ(p[4].device_mark.line, 10);  // gpu: N is where its device is
    EXPECT_STREQ(p[5].device, "none");
    EXPECT_EQ(p[5].gpu, -1);

    for (const char *bad : {"gpu", "cuda", "cuda:", "cuda:x", "cuda:-1", "cuda:1024", "host:99999", "rocm:0"}) {
        xo_cluster_error_t err = load_err(head + "      - {device: '" + bad + "'}\n");
        EXPECT_EQ(err.line, 6) << bad;
        EXPECT_EQ(err.column, 18) << bad;
        EXPECT_HAS(std::string(err.text), std::string("test.yaml:6:18: hosts[0].pools[0].device: expected one of: none, "
                                                      "auto, host, host:N, cuda:N (N a device index, 0 to 1023), got '") +
                                              bad + "'");
    }
    // gpu and device at once: refused at the later of the two.
    xo_cluster_error_t err = load_err(head + "      - gpu: 0\n        device: auto\n");
    EXPECT_STREQ(err.text, "test.yaml:7:17: hosts[0].pools[0].device: give either 'gpu' or 'device', not both "
                           "('gpu: 0' is 'device: cuda:0')");
    err = load_err(head + "      - {device: 'cuda:0', gpu: 1}\n");
    EXPECT_STREQ(err.text, "test.yaml:6:33: hosts[0].pools[0].gpu: give either 'gpu' or 'device', not both "
                           "('gpu: 1' is 'device: cuda:1')");
    // Saying "none" to one of them is fine.
    EXPECT_TRUE(load_ok(head + "      - {device: none, gpu: 1}\n      - {device: auto, gpu: none}\n"));
}

TEST(ClusterFile, TransportsAndPolicies)
{
    xo_cluster_error_t err = load_err("secret: x\ntransport: {prefer: [shm, tcp, shm]}\nhosts: [{name: a, address: b}]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:32: transport.prefer[2]: 'shm' is listed twice");
    err = load_err("secret: x\ntransport: {prefer: [rdma]}\nhosts: [{name: a, address: b}]\n");
    EXPECT_STREQ(err.text, "test.yaml:2:22: transport.prefer[0]: expected one of: shm, unix, ucx, tcp; got 'rdma'");
    err = load_err("secret: x\ntransport: {prefer: []}\nhosts: [{name: a, address: b}]\n");
    EXPECT_HAS(err.text, "transport.prefer: expected at least one of: shm, unix, ucx, tcp");

    err = load_err("secret: x\nplacement: {policy: fastest}\nhosts: [{name: a, address: b}]\n");
    EXPECT_HAS(err.text, "test.yaml:2:21: placement.policy: expected a placement policy, one of: main_pool, random, "
                         "random_sub_pool, round_robin, least_loaded, most_free_memory, weighted; got 'fastest'");
    err = load_err("secret: x\nplacement: {policy: address}\nhosts: [{name: a, address: b}]\n");
    EXPECT_HAS(err.text, "policy 'address' needs a parameter per call");
    ClusterPtr c = load_ok("secret: x\nplacement: {policy: weighted}\nhosts: [{name: a, address: b}]\n");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->placement.kind, XO_PLACE_WEIGHTED);
}

TEST(ClusterFile, MissingRequiredKeys)
{
    xo_cluster_error_t err = load_err("secret: x\nname: c\n");
    EXPECT_EQ(err.line, 1);
    EXPECT_EQ(err.column, 1);
    EXPECT_HAS(err.text, "test.yaml:1:1: missing key 'hosts' in the cluster (required: ");

    err = load_err("secret: x\nhosts:\n  - address: 10.0.0.1\n");
    EXPECT_HAS(err.text, "test.yaml:3:5: hosts[0]: missing key 'name' in a host (required: ");

    err = load_err("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n  - name: b\n    port: 1\n");
    EXPECT_HAS(err.text, "test.yaml:5:5: hosts[1]: missing key 'address' in a host");

    err = load_err("secret: x\nhosts: []\n");
    EXPECT_STREQ(err.text, "test.yaml:2:8: hosts: expected at least one host");
}

TEST(ClusterFile, DuplicateHostNamesAndAddresses)
{
    xo_cluster_error_t err = load_err(R"(secret: x
hosts:
  - {name: a, address: 10.0.0.1}
  - {name: b, address: 10.0.0.2}
  - {name: a, address: 10.0.0.3}
)");
    EXPECT_EQ(err.line, 5);
    EXPECT_EQ(err.column, 12);
    EXPECT_STREQ(err.text, "test.yaml:5:12: hosts[2].name: duplicate host name 'a' (hosts[0], line 3)");

    err = load_err(R"(secret: x
hosts:
  - {name: a, address: node1, port: 7100}
  - {name: b, address: NODE1}
)");
    EXPECT_STREQ(err.text, "test.yaml:4:24: hosts[1].address: duplicate pool address NODE1:7100: host 'b' and host "
                           "'a' (line 3) cannot both listen there");

    // Other ports, or "any port", are fine.
    EXPECT_TRUE(load_ok("secret: x\nhosts:\n  - {name: a, address: n}\n  - {name: b, address: n, port: 7101}\n"));
    EXPECT_TRUE(load_ok("secret: x\nhosts:\n  - {name: a, address: n, port: 0}\n  - {name: b, address: n, port: 0}\n"));
}

TEST(ClusterFile, DuplicateKeys)
{
    xo_cluster_error_t err = load_err("secret: x\nhosts: [{name: a, address: b}]\nsecret: y\n");
    EXPECT_STREQ(err.text, "test.yaml:3:1: duplicate key 'secret' in the cluster (first at line 1)");
}

TEST(ClusterFile, YamlSyntaxErrorCarriesLibyamlsPlace)
{
    xo_cluster_error_t err = load_err("secret: x\nhosts: a: b\n");
    EXPECT_EQ(err.line, 2);
    EXPECT_EQ(err.column, 9);
    EXPECT_STREQ(err.text, "test.yaml:2:9: YAML syntax error: mapping values are not allowed in this context");

    err = load_err("secret: x\nhosts:\n  - name: a\n   address: b\n");
    EXPECT_STREQ(err.text, "test.yaml:4:4: YAML syntax error: did not find expected '-' indicator (while parsing a "
                           "block collection at line 3, column 3)");

    err = load_err("secret: x\nhosts: [{name: a, address: b}\n");
    EXPECT_HAS(err.text, "YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line "
                         "2, column 8)");

    err = load_err("secret: \"a\xff\"\nhosts: []\n");
    EXPECT_STREQ(err.text, "test.yaml:1:11: YAML syntax error: invalid leading UTF-8 octet (byte 10)");
}

TEST(ClusterFile, DocumentShape)
{
    xo_cluster_error_t err = load_err("");
    EXPECT_STREQ(err.text, "test.yaml:1:1: the file is empty (expected a mapping with at least 'hosts' and 'secret')");
    err = load_err("- a\n- b\n");
    EXPECT_STREQ(err.text, "test.yaml:1:1: expected the cluster (a mapping of key: value), got a list");
    err = load_err("secret: x\nhosts: [{name: a, address: b}]\n---\nsecret: y\n");
    EXPECT_STREQ(err.text, "test.yaml:3:1: a second YAML document starts here; a cluster file holds one");
    err = load_err("secret: x\n? [a]\n: b\nhosts: [{name: a, address: b}]\n");
    EXPECT_HAS(err.text, "test.yaml:2:3: expected a key of the cluster (one of: name, secret,");
    err = load_err("secret: x\n\"hosts\\0\": []\n");
    EXPECT_HAS(err.text, "unknown key 'hosts?' in the cluster");
}

TEST(ClusterFile, CpuListSyntaxIsCheckedAtLoad)
{
    xo_cluster_error_t err = load_err("secret: x\nhosts: [{name: a, address: b, pools: [{cpus: '0-x'}]}]\n");
    EXPECT_EQ(err.line, 2);
    EXPECT_EQ(err.column, 46);
    EXPECT_HAS(err.text, "test.yaml:2:46: hosts[0].pools[0].cpus: cpu list \"0-x\": ");
}

TEST(ClusterFile, TooManySubPools)
{
    xo_cluster_error_t err =
        load_err("secret: x\nhosts:\n  - name: a\n    address: b\n    pools: [{count: 200}, {count: 57}]\n");
    EXPECT_STREQ(err.text, "test.yaml:5:12: hosts[0].pools: 257 sub pools; a host has at most 256");
}

TEST(ClusterFile, AnchorsAreFollowedAndAliasBombsRefused)
{
    ClusterPtr c = load_ok(R"(secret: x
hosts:
  - name: a
    address: 10.0.0.1
    pools: &std [{cpus: "0-1", labels: [cpu]}, {gpu: 0}]
  - name: b
    address: 10.0.0.2
    pools: *std
)");
    ASSERT_TRUE(c);
    ASSERT_EQ(c->hosts[1].n_pools, 2u);
    EXPECT_STREQ(c->hosts[1].pools[0].cpus, "0-1");
    EXPECT_EQ(c->hosts[1].pools[1].gpu, 0);

    // Each host repeats 100 pool entries of 20 labels through aliases: 100 hosts are 200000 values.
    std::string nested = "secret: x\nhosts:\n  - {name: a, address: b, pools: &p [{labels: &l [x, x, x, x, x, "
                         "x, x, x, x, x, x, x, x, x, x, x, x, x, x, x]}";
    for (int i = 0; i < 99; i++) nested += ", {labels: *l}";
    nested += "]}\n";
    for (int i = 0; i < 99; i++) nested += "  - {name: h" + std::to_string(i) + ", address: b, port: " +
                                           std::to_string(8000 + i) + ", pools: *p}\n";
    xo_cluster_error_t err = load_err(nested);
    EXPECT_HAS(err.text, "values (aliases expanded); a cluster file this large is refused");
}

TEST(ClusterFile, ErrNullAndUnreadableFile)
{
    xo_cluster_t *c = kUntouched;
    EXPECT_EQ(xo__cluster_load_string("hosts: 1\n", nullptr, &c, nullptr), XO_ECONFIG);
    EXPECT_EQ(c, kUntouched);
    EXPECT_TRUE(contains(xo_last_error(), "<string>:1:8: hosts: expected a list of host"));

    xo_cluster_error_t err{};
    EXPECT_EQ(xo__cluster_load("/nonexistent/cluster.yaml", &c, &err), XO_ESYS);
    EXPECT_EQ(c, kUntouched);
    EXPECT_EQ(err.line, 0);
    EXPECT_STREQ(err.text, "/nonexistent/cluster.yaml: cannot open the cluster file: No such file or directory");
}

// ---- dump and reference -----------------------------------------------------------------------------------------

TEST(ClusterFile, DumpWritesEveryDefaultAndLoadsBack)
{
    TempDir d;
    d.write("key", "k\n");
    std::string path = d.write("c.yaml", std::string(kFull).replace(0, strlen("name: prod\nsecret: \"s3cret!\"\n"),
                                                                     "name: prod\nsecret_file: key\n"));
    xo_cluster_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_load(path.c_str(), &raw, &err), XO_OK) << err.text;
    ClusterPtr c(raw);
    std::string text = dump(c.get());
    EXPECT_HAS(text, "\nsecret_file: \"");
    EXPECT_HAS(text, "\nplacement:\n  policy: random_sub_pool\n  weights:\n    mem: 2\n    load: 0.5\n    link: 0\n");
    EXPECT_HAS(text, "\nhosts:\n  - name: \"head\"\n    address: \"10.0.0.1\"\n    port: 7200\n    launcher: local\n"
                     "    main:\n      threads: 3\n      labels: [\"head\", \"ctl\"]\n    pools:\n"
                     "      - cpus: \"0-3\"\n        count: 2\n        gpu: 1\n");
    EXPECT_HAS(text, "      - cpus: \"6\"\n        count: 1\n        gpu: none\n        device: \"none\"\n        labels: []\n"
                     "        threads: 0\n");
    EXPECT_HAS(text, "  - name: \"w1\"\n    address: \"w1.example.com\"\n    port: 7100\n    launcher: none\n"
                     "    main:\n      threads: 1\n      labels: []\n    pools: []\n");
    EXPECT_HAS(text, "    pools:\n      - cpus: auto\n        count: auto\n");
    EXPECT_HAS(text, "transport:\n  prefer: [tcp, shm]\n  ucx_tls: \"rc,cuda_ipc\"\n");
    EXPECT_FALSE(contains(text, "secret:"));

    ClusterPtr again = load_ok(text, path.c_str());
    ASSERT_TRUE(again);
    EXPECT_EQ(dump(again.get()), text);
    EXPECT_STREQ(again->secret, "k");

    // An inline secret is hidden.
    ClusterPtr inl = load_ok("secret: 'a \"tricky\" one\\'\nhosts: [{name: a, address: b}]\n");
    ASSERT_TRUE(inl);
    std::string t2 = dump(inl.get());
    EXPECT_HAS(t2, "secret: \"***\"  # hidden (15 bytes)\n");
    EXPECT_FALSE(contains(t2, "tricky"));
}

TEST(ClusterFile, DumpQuotesStringsSoTheyReadBack)
{
    ClusterPtr c = load_ok("secret_file: /etc/hostname\ntransport: {ucx_tls: \"a\\\"b\\\\c\\td\\u2028e\\x7f\\u0085\"}\n"
                           "modules: ['#x: y']\nhosts: [{name: a, address: b}]\n");
    ASSERT_TRUE(c);
    std::string text = dump(c.get());
    ClusterPtr again = load_ok(text);
    ASSERT_TRUE(again);
    EXPECT_STREQ(again->transport.ucx_tls, c->transport.ucx_tls);
    EXPECT_STREQ(again->modules[0], c->modules[0]);
}

TEST(ClusterFile, DocsHoldTheGeneratedKeyReference)
{
    char *buf = nullptr;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT_EQ(xo__cluster_write_reference(f), 0);
    fclose(f);
    std::string ref(buf, len);
    free(buf);
    EXPECT_HAS(ref, "| `count` | integer 0..256, `auto` or `gpus` | 1 with a cpu list; `auto` with `cpus: auto` |");
    EXPECT_HAS(ref, "| `restart` | `none` \\| `process` \\| `actors` | `process` |");

    std::string doc = read_all(XO_CLUSTER_DOC_PATH);
    const std::string begin = "<!-- BEGIN keys: generated by xo__cluster_write_reference; do not edit -->\n";
    const std::string end = "<!-- END keys -->";
    size_t b = doc.find(begin), e = doc.find(end);
    ASSERT_NE(b, std::string::npos) << XO_CLUSTER_DOC_PATH << " has no BEGIN keys marker";
    ASSERT_NE(e, std::string::npos);
    std::string in_doc = doc.substr(b + begin.size(), e - b - begin.size());
    if (in_doc != ref) {
        std::string out = ::testing::TempDir() + "cluster-file-reference.md";
        std::ofstream(out) << ref;
        ADD_FAILURE() << XO_CLUSTER_DOC_PATH << " is out of date with the key tables: replace the text between the "
                      << "markers with " << out;
    }
}

TEST(ClusterFile, ExamplesParse)
{
    {  // the device pipeline's cluster: three stage pools that own a device each (a GPU, else the host device)
        xo_cluster_t *raw = nullptr;
        xo_cluster_error_t err{};
        ASSERT_EQ(xo__cluster_load(XO_EXAMPLES_DIR "/pipeline.yaml", &raw, &err), XO_OK) << err.text;
        ClusterPtr c(raw);
        ASSERT_EQ(c->n_hosts, 1u);
        ASSERT_EQ(c->hosts[0].n_pools, 3u);
        const char *labels[] = {"produce", "transform", "reduce"};
        for (size_t j = 0; j < 3; j++) {
            EXPECT_STREQ(c->hosts[0].pools[j].device, "auto");
            EXPECT_EQ(c->hosts[0].pools[j].count, 1);
            ASSERT_EQ(c->hosts[0].pools[j].n_labels, 1u);
            EXPECT_STREQ(c->hosts[0].pools[j].labels[0], labels[j]);
        }
    }
    glob_t g;
    ASSERT_EQ(glob(XO_EXAMPLES_DIR "/cluster*.yaml", 0, nullptr, &g), 0);
    ASSERT_GE(g.gl_pathc, 2u);
    bool saw_main = false;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        xo_cluster_t *raw = nullptr;
        xo_cluster_error_t err{};
        EXPECT_EQ(xo__cluster_load(g.gl_pathv[i], &raw, &err), XO_OK) << err.text;
        ClusterPtr c(raw);
        if (c && std::string(g.gl_pathv[i]).find("/cluster-full.yaml") != std::string::npos) {
            saw_main = true;
            EXPECT_STREQ(c->name, "wordcount");
            EXPECT_EQ(c->n_hosts, 3u);
            EXPECT_EQ(c->hosts[2].n_pools, 3u);
            EXPECT_EQ(c->hosts[0].pools[0].count, 4);
            EXPECT_EQ(std::string(c->modules[0]).rfind("/", 0), 0u);  // absolute
        }
    }
    globfree(&g);
    EXPECT_TRUE(saw_main);
}

// ---- per host ---------------------------------------------------------------------------------------------------

TEST(ClusterHost, CpusThatDoNotExistHereAreAnErrorAtTheValue)
{
    TopoPtr t = eight_cores();
    ClusterPtr c = load_ok("secret: x\nhosts:\n  - name: a\n    address: b\n    pools:\n      - cpus: '0-3'\n"
                           "      - {cpus: '6-9', count: 2}\n");
    ASSERT_TRUE(c && t);
    xo_cluster_error_t err{};
    EXPECT_EQ(xo__cluster_check_host(c.get(), 0, t.get(), &err), XO_ECONFIG);
    EXPECT_EQ(err.line, 7);
    EXPECT_EQ(err.column, 16);
    EXPECT_STREQ(err.text, "test.yaml:7:16: hosts[0].pools[1].cpus: CPU 8 does not exist on this host (its CPUs are "
                           "0-7)");
    EXPECT_STREQ(err.text, xo_last_error());
    xo_cluster_host_config_t *hc = nullptr;
    EXPECT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &hc, &err), XO_ECONFIG);
    EXPECT_EQ(hc, nullptr);
    EXPECT_EQ(xo__cluster_check_host(c.get(), 1, t.get(), &err), XO_EINVAL);

    ClusterPtr ok = load_ok("secret: x\nhosts: [{name: a, address: b, pools: [{cpus: '0-7'}]}]\n");
    EXPECT_EQ(xo__cluster_check_host(ok.get(), 0, t.get(), &err), XO_OK);
}

// Item 8 of issue 10: restart intensity from the file into the host's config; the host's defaults without it.
TEST(ClusterHost, RestartIntensityReachesTheHostConfig)
{
    TopoPtr t = eight_cores();
    ClusterPtr c = load_ok("secret: x\nrestart_intensity: {max_restarts: 5, period_ms: 2000, backoff_ms: 7}\n"
                           "hosts: [{name: a, address: 127.0.0.1, pools: [{cpus: '0'}]}]\n");
    ClusterPtr d = load_ok("secret: x\nhosts: [{name: a, address: 127.0.0.1, pools: [{cpus: '0'}]}]\n");
    ASSERT_TRUE(c && d && t);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    EXPECT_EQ(hc->cfg.max_restarts, 5u);
    EXPECT_EQ(hc->cfg.restart_period_ms, 2000u);
    EXPECT_EQ(hc->cfg.restart_backoff_ms, 7u);
    EXPECT_EQ(hc->cfg.restart_backoff_max_ms, (unsigned)XO_HOST_RESTART_BACKOFF_MAX_MS_DEFAULT);
    ASSERT_EQ(xo__cluster_host_config(d.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hd(raw);
    EXPECT_EQ(hd->cfg.max_restarts, (unsigned)XO_HOST_MAX_RESTARTS_DEFAULT);
    EXPECT_EQ(hd->cfg.restart_period_ms, (unsigned)XO_HOST_RESTART_PERIOD_MS_DEFAULT);
    xo_cluster_error_t e = load_err("secret: x\nrestart_intensity: {max_restarts: 0}\nhosts: [{name: a, address: b}]\n");
    EXPECT_HAS(std::string(e.text), "restart_intensity.max_restarts");
    e = load_err("secret: x\nrestart_intensity: {retries: 2}\nhosts: [{name: a, address: b}]\n");
    EXPECT_HAS(std::string(e.text), "unknown key 'retries'");
}

// Issue 10 item 20: a pool entry's env reaches each of its sub pools' config (xo_host_start passes it to the process,
// tested in tests/cluster/host_test.cc); bad entries are refused at their value with the line.
TEST(ClusterHost, PoolEnvReachesEachSubPool)
{
    TopoPtr t = eight_cores();
    ClusterPtr c = load_ok("secret: x\nhosts:\n  - name: a\n    address: 127.0.0.1\n    pools:\n"
                           "      - {cpus: '0-1', count: 2, env: [OMP_NUM_THREADS=4, 'MY_FLAGS=a=b c']}\n"
                           "      - {cpus: '2'}\n");
    ASSERT_TRUE(c && t);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    ASSERT_EQ(hc->cfg.n_sub_pools, 3u);
    for (size_t k = 0; k < 2; k++) {
        ASSERT_EQ(hc->sub_pools[k].n_env, 2u);
        EXPECT_STREQ(hc->sub_pools[k].env[0], "OMP_NUM_THREADS=4");
        EXPECT_STREQ(hc->sub_pools[k].env[1], "MY_FLAGS=a=b c");
    }
    EXPECT_EQ(hc->sub_pools[2].n_env, 0u);
    const std::string head = "secret: x\nhosts:\n  - name: a\n    address: b\n    pools:\n";
    for (const char *bad : {"NOEQUALS", "=v", "1X=2", "A-B=1", "XO_SECRET=s"}) {
        xo_cluster_error_t e = load_err(head + "      - {env: ['" + bad + "']}\n");
        EXPECT_EQ(e.line, 6) << bad;
        EXPECT_HAS(std::string(e.text), "hosts[0].pools[0].env");
    }
}

TEST(ClusterHost, HostConfigExpandsPoolEntries)
{
    TopoPtr t = eight_cores();
    ClusterPtr c = load_ok(R"(secret: x
modules: [m.so]
restart: none
hosts:
  - name: a
    address: 10.1.2.3
    port: 7300
    main: {threads: 2, labels: [m1, m2]}
    pools:
      - {cpus: "0-3", count: 2, labels: [x, y], threads: 3, gpu: 1}
      - {cpus: "4-5"}
      - {count: 0}
      - {cpus: "6-7", count: auto}
  - name: b
    address: "fe80::1"
  - name: c
    address: c
    pools: [{count: 3}]
)",
                           "/srv/cl/c.yaml");
    ASSERT_TRUE(c && t);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    const xo_host_config_t &cfg = hc->cfg;
    EXPECT_STREQ(cfg.address, "10.1.2.3:7300");
    EXPECT_EQ(cfg.restart, XO_RESTART_NONE);
    EXPECT_EQ(cfg.main_threads, 2u);
    EXPECT_STREQ(hc->main_labels, "m1,m2");
    ASSERT_EQ(cfg.n_modules, 1u);
    EXPECT_STREQ(cfg.modules[0], "/srv/cl/m.so");
    ASSERT_EQ(cfg.n_sub_pools, 5u);
    ASSERT_EQ(cfg.sub_pools, hc->sub_pools);
    std::vector<std::string> cpus;
    for (unsigned i = 0; i < cfg.n_sub_pools; i++) cpus.push_back(cfg.sub_pools[i].cpus);
    EXPECT_EQ(cpus, (std::vector<std::string>{"0-1", "2-3", "4-5", "6", "7"}));
    EXPECT_STREQ(cfg.sub_pools[0].labels, "x,y");
    EXPECT_STREQ(cfg.sub_pools[1].labels, "x,y");
    EXPECT_EQ(cfg.sub_pools[2].labels, nullptr);
    EXPECT_EQ(cfg.sub_pools[0].n_threads, 3u);
    EXPECT_EQ(cfg.sub_pools[2].n_threads, 0u);
    EXPECT_EQ(hc->sub_pool_gpu[0], 1);
    EXPECT_EQ(hc->sub_pool_gpu[1], 1);
    EXPECT_EQ(hc->sub_pool_gpu[2], -1);

    // The default entry: one sub pool per core; an IPv6 address gets brackets.
    ASSERT_EQ(xo__cluster_host_config(c.get(), 1, t.get(), &raw, &err), XO_OK) << err.text;
    hc.reset(raw);
    EXPECT_STREQ(hc->cfg.address, "[fe80::1]:7100");
    EXPECT_EQ(hc->cfg.main_threads, 1u);
    EXPECT_EQ(hc->main_labels, nullptr);
    ASSERT_EQ(hc->cfg.n_sub_pools, 8u);
    for (unsigned i = 0; i < 8; i++) EXPECT_EQ(std::string(hc->cfg.sub_pools[i].cpus), std::to_string(i));

    // A count with auto cpus splits the whole host.
    ASSERT_EQ(xo__cluster_host_config(c.get(), 2, t.get(), &raw, &err), XO_OK) << err.text;
    hc.reset(raw);
    ASSERT_EQ(hc->cfg.n_sub_pools, 3u);
    EXPECT_STREQ(hc->cfg.sub_pools[0].cpus, "0-2");
    EXPECT_STREQ(hc->cfg.sub_pools[1].cpus, "3-5");
    EXPECT_STREQ(hc->cfg.sub_pools[2].cpus, "6-7");

    EXPECT_EQ(xo__cluster_host_config(c.get(), 3, t.get(), &raw, &err), XO_EINVAL);
}

TEST(ClusterHost, SubPoolsOwnTheirDevices)
{
    ClusterPtr c = load_ok("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    pools:\n"
                           "      - {cpus: '0', gpu: 1}\n      - {cpus: '1', device: 'cuda:2'}\n"
                           "      - {cpus: '2', device: host}\n      - {cpus: '3', device: 'host:1'}\n"
                           "      - {cpus: '4'}\n      - {cpus: '5-7', count: 3, device: auto}\n");
    TopoPtr t = eight_cores();
    ASSERT_TRUE(c && t);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    ASSERT_EQ(hc->cfg.n_sub_pools, 8u);
    const xo_sub_pool_config_t *s = hc->cfg.sub_pools;
    EXPECT_STREQ(s[0].device, "cuda:1");
    EXPECT_EQ(hc->sub_pool_gpu[0], 1);
    EXPECT_STREQ(s[1].device, "cuda:2");
    EXPECT_EQ(hc->sub_pool_gpu[1], 2);
    EXPECT_STREQ(s[2].device, "host:0");
    EXPECT_EQ(hc->sub_pool_gpu[2], -1);
    EXPECT_STREQ(s[3].device, "host:1");
    EXPECT_EQ(s[4].device, nullptr);
    EXPECT_EQ(hc->sub_pool_gpu[4], -1);

    // auto: this machine's CUDA devices in turn, else the host device, with a note naming the line either way.
    size_t n_cuda = 0;
    const xo_device_ops_t *cuda = xo_device_backend_find("cuda");
    if (cuda) xo_device_discover(cuda, nullptr, 0, &n_cuda);
    ASSERT_NE(hc->device_notes, nullptr);
    std::string notes = hc->device_notes;
    EXPECT_EQ(notes.rfind("test.yaml:11:41: hosts[0].pools[5].device: auto: ", 0), 0u) << notes;
    EXPECT_EQ(notes.back(), '\n');
    for (int k = 0; k < 3; k++) {
        if (n_cuda == 0) {
            EXPECT_STREQ(s[5 + k].device, "host:0");
            EXPECT_EQ(hc->sub_pool_gpu[5 + k], -1);
        } else {
            EXPECT_EQ(std::string(s[5 + k].device), "cuda:" + std::to_string(k % n_cuda));
            EXPECT_EQ(hc->sub_pool_gpu[5 + k], (int)(k % n_cuda));
        }
    }
    EXPECT_EQ(hc->device_fallback, n_cuda == 0);
    EXPECT_HAS(notes, n_cuda == 0 ? "no CUDA device here (" : "auto: cuda:0");

    // No auto entry: nothing looked up, nothing to say.
    c = load_ok("secret: x\nhosts: [{name: a, address: 10.0.0.1, pools: [{cpus: '0', device: host}]}]\n");
    ASSERT_TRUE(c);
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    hc.reset(raw);
    EXPECT_EQ(hc->device_notes, nullptr);
    EXPECT_FALSE(hc->device_fallback);
}

// count: gpus makes one sub pool per CUDA GPU of the host (sub pool k on cuda:k); with device: auto it falls back
// to one sub pool on the host device where there is none; without, a host with no GPU is an error with the line.
TEST(ClusterHost, CountGpusIsOnePoolPerGpu)
{
    TopoPtr t = eight_cores();
    size_t n_cuda = 0;
    const xo_device_ops_t *cuda = xo_device_backend_find("cuda");
    if (cuda) xo_device_discover(cuda, nullptr, 0, &n_cuda);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};

    ClusterPtr c = load_ok("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n"
                           "    pools: [{count: gpus, device: auto, labels: [gpu]}]\n");
    ASSERT_TRUE(c && t);
    EXPECT_EQ(c->hosts[0].pools[0].count, XO_CLUSTER_COUNT_GPUS);
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    ASSERT_EQ(hc->cfg.n_sub_pools, n_cuda ? n_cuda : 1u);
    for (size_t k = 0; k < hc->cfg.n_sub_pools; k++) {
        EXPECT_EQ(std::string(hc->cfg.sub_pools[k].device), n_cuda ? "cuda:" + std::to_string(k) : "host:0");
        EXPECT_EQ(hc->sub_pool_gpu[k], n_cuda ? (int)k : -1);
        EXPECT_STREQ(hc->cfg.sub_pools[k].labels, "gpu");
    }
    EXPECT_EQ(hc->device_fallback, n_cuda == 0);
    ASSERT_NE(hc->device_notes, nullptr);
    if (!n_cuda) {
        EXPECT_HAS(std::string(hc->device_notes), "no CUDA device here (");
    }

    c = load_ok("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    pools: [{count: gpus}]\n");
    ASSERT_TRUE(c);
    if (n_cuda == 0) {
        EXPECT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_ECONFIG);
        EXPECT_HAS(err.text, "test.yaml:5:13: hosts[0].pools[0]: count: gpus, and this host has no CUDA GPU (");
        EXPECT_HAS(err.text, "'device: auto' would fall back");
    } else {
        ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
        hc.reset(raw);
        EXPECT_EQ(hc->cfg.n_sub_pools, n_cuda);
        EXPECT_HAS(std::string(hc->device_notes), "count: gpus: ");
    }

    // A device of its own would contradict count: gpus: refused when the file is loaded, at that key.
    xo_cluster_error_t e = load_err("secret: x\nhosts: [{name: a, address: b, pools: [{count: gpus, device: host}]}]\n");
    EXPECT_HAS(e.text, "test.yaml:2:61: hosts[0].pools[0].device: 'count: gpus' gives sub pool k GPU k: leave "
                       "'device' out");
    e = load_err("secret: x\nhosts: [{name: a, address: b, pools: [{gpu: 1, count: gpus}]}]\n");
    EXPECT_HAS(e.text, "hosts[0].pools[0].gpu: 'count: gpus' gives sub pool k GPU k: leave 'gpu' out");
}

// Sub pools that own GPUs and give no cpus are bound to the CPUs near their GPUs where the system says which those
// are; elsewhere (no such GPU here, no affinity known) the host is split as for any pool, and a note says why.
TEST(ClusterHost, GpuPoolsWithoutCpusAreBoundNearTheirGpusOrSayWhyNot)
{
    TopoPtr t = eight_cores();
    size_t n_cuda = 0;
    const xo_device_ops_t *cuda = xo_device_backend_find("cuda");
    if (cuda) xo_device_discover(cuda, nullptr, 0, &n_cuda);
    ClusterPtr c = load_ok("secret: x\nhosts:\n  - name: a\n    address: 10.0.0.1\n    pools: [{gpu: 63, count: 2}]\n");
    ASSERT_TRUE(c && t);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    ASSERT_EQ(hc->cfg.n_sub_pools, 2u);
    EXPECT_STREQ(hc->cfg.sub_pools[0].cpus, "0-3"); // the whole host, split as for any pool
    EXPECT_STREQ(hc->cfg.sub_pools[1].cpus, "4-7");
    ASSERT_NE(hc->device_notes, nullptr);
    std::string notes = hc->device_notes;
    EXPECT_HAS(notes, "test.yaml:5:13: hosts[0].pools[0]: not bound near its GPUs (cuda:63");
    EXPECT_HAS(notes, n_cuda ? "is not among this machine's" : "no CUDA device here");

    // Pools that give their cpus keep them, and nothing is said.
    c = load_ok("secret: x\nhosts: [{name: a, address: b, pools: [{gpu: 63, cpus: '2-3'}]}]\n");
    ASSERT_TRUE(c);
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &raw, &err), XO_OK) << err.text;
    hc.reset(raw);
    EXPECT_STREQ(hc->cfg.sub_pools[0].cpus, "2-3");
    EXPECT_EQ(hc->device_notes, nullptr);
}

TEST(ClusterHost, AutoCountsBeyondTheLimitAreRefused)
{
    // 255 explicit pools plus one per core of an 8-core host.
    ClusterPtr c = load_ok("secret: x\nhosts:\n  - name: a\n    address: b\n    pools: [{count: 255}, {}]\n");
    TopoPtr t = eight_cores();
    ASSERT_TRUE(c && t);
    xo_cluster_host_config_t *hc = nullptr;
    xo_cluster_error_t err{};
    EXPECT_EQ(xo__cluster_host_config(c.get(), 0, t.get(), &hc, &err), XO_ECONFIG);
    EXPECT_EQ(hc, nullptr);
    // The error points at the entry that goes over the limit.
    EXPECT_STREQ(err.text, "test.yaml:5:27: hosts[0].pools: 263 or more sub pools on this host (counts resolved with "
                           "its 8 cores); a host has at most 256");
}

TEST(ClusterHost, HostConfigWithThisMachinesTopology)
{
    ClusterPtr c = load_ok("secret: x\nhosts: [{name: a, address: 127.0.0.1, pools: [{cpus: '0', count: 1}]}]\n");
    ASSERT_TRUE(c);
    xo_cluster_host_config_t *raw = nullptr;
    xo_cluster_error_t err{};
    ASSERT_EQ(xo__cluster_host_config(c.get(), 0, nullptr, &raw, &err), XO_OK) << err.text;
    HostConfigPtr hc(raw);
    ASSERT_EQ(hc->cfg.n_sub_pools, 1u);
    EXPECT_STREQ(hc->cfg.sub_pools[0].cpus, "0");
}

TEST(ClusterHost, IsLocal)
{
    std::string text = "secret: x\nhosts:\n  - {name: lo, address: 127.0.0.1}\n  - {name: name, address: localhost}\n"
                       "  - {name: v6, address: '::1'}\n  - {name: far, address: 192.0.2.1}\n";
    // One of this machine's own (non-loopback) interface addresses, when it has one.
    std::string own;
    struct ifaddrs *ifs = nullptr;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *f = ifs; f && own.empty(); f = f->ifa_next) {
            if (!f->ifa_addr || f->ifa_addr->sa_family != AF_INET) continue;
            char buf[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in *>(f->ifa_addr)->sin_addr, buf, sizeof buf);
            if (strncmp(buf, "127.", 4) != 0) own = buf;
        }
        freeifaddrs(ifs);
    }
    if (!own.empty()) text += "  - {name: own, address: " + own + "}\n";
    ClusterPtr c = load_ok(text);
    ASSERT_TRUE(c);
    EXPECT_TRUE(xo__cluster_host_is_local(c.get(), 0));
    EXPECT_TRUE(xo__cluster_host_is_local(c.get(), 1));
    EXPECT_TRUE(xo__cluster_host_is_local(c.get(), 2));
    EXPECT_FALSE(xo__cluster_host_is_local(c.get(), 3));  // TEST-NET-1, never an interface of a test machine
    if (!own.empty()) {
        EXPECT_TRUE(xo__cluster_host_is_local(c.get(), 4)) << own;
    }
    EXPECT_FALSE(xo__cluster_host_is_local(c.get(), 99));
}

}  // namespace
