// xo_cluster_host_start (include/xoscar/cluster.h): a host of a cluster file started in this process, as
// `xoscar up --foreground` does, and its errors: a bad file with its position, an unknown host.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/runtime/pool_fixture.h"
#include "xoscar/cluster.h"

namespace {

std::string write_file(const std::string &text)
{
    char path[] = "/tmp/xo-cluster-start-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    EXPECT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << text;
    return path;
}

TEST(ClusterHostStart, StartsTheNamedHostWithItsPoolsModulesAndSecret)
{
    setenv("XO_POOL_BINARY", XO_POOL_BINARY, 1);
    std::string path = write_file(std::string("name: embedded\nsecret: \"from the file\"\nmodules: [") +
                                  XO_TEST_MODULE_PATH + "]\nrestart: actors\nhosts:\n  - name: here\n"
                                  "    address: 127.0.0.1\n    port: 0\n    pools: [{count: 2, labels: [w]}]\n");
    xo_host_t *host = nullptr;
    ASSERT_EQ(xo_cluster_host_start(path.c_str(), "here", &host), XO_OK) << xo_last_error();
    EXPECT_EQ(xo_host_sub_pool_count(host), 2u);
    xo_placement_t p{};
    p.strategy = "random_label";
    p.label = "w";
    xo_ref_t *ref = nullptr;
    ASSERT_EQ(xo_host_create_actor(host, "Counter", xo_args("l", (int64_t)40), "c", &p, &ref), XO_OK)
        << xo_last_error();
    EXPECT_EQ(call_i64(ref, "add", xo_args("l", (int64_t)2)), 42); // in a sub pool: the file's secret let us in
    xo_ref_free(ref);
    xo_host_stop(host);
    unlink(path.c_str());
}

TEST(ClusterHostStart, ABadFileOrAnUnknownHostIsAConfigErrorThatSaysWhere)
{
    std::string bad = write_file("secret: s\nhosts:\n  - name: a\n    address: 127.0.0.1\n    pools: [{cpu: 1}]\n");
    xo_host_t *host = nullptr;
    EXPECT_EQ(xo_cluster_host_start(bad.c_str(), nullptr, &host), XO_ECONFIG);
    EXPECT_NE(std::string(xo_last_error()).find(bad + ":5:14: "), std::string::npos) << xo_last_error();
    EXPECT_EQ(host, nullptr);
    std::string good = write_file("secret: s\nhosts:\n  - name: a\n    address: 127.0.0.1\n    pools: []\n");
    EXPECT_EQ(xo_cluster_host_start(good.c_str(), "b", &host), XO_ECONFIG);
    EXPECT_NE(std::string(xo_last_error()).find("has no host named 'b'"), std::string::npos) << xo_last_error();
    EXPECT_EQ(xo_cluster_host_start(nullptr, "a", &host), XO_EINVAL);
    unlink(bad.c_str());
    unlink(good.c_str());
}

} // namespace
