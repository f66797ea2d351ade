// The router's choices (transport/router.h): which URLs reach a pool address and which ones a pool listens on,
// for this host and another, sub pools, port 0, XO_TRANSPORT, XO_UCX and XO_LISTEN_ANY.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

extern "C" {
#include "transport/router.h"
}

namespace {

class Env {
  public:
    Env(const char *name, const char *value) : name_(name)
    {
        const char *old = getenv(name);
        had_ = old != nullptr;
        if (had_) old_ = old;
        if (value) setenv(name, value, 1);
        else unsetenv(name);
    }
    ~Env()
    {
        if (had_) setenv(name_.c_str(), old_.c_str(), 1);
        else unsetenv(name_.c_str());
    }

  private:
    std::string name_, old_;
    bool had_ = false;
};

xo_pool_addr_t Addr(const char *s)
{
    xo_pool_addr_t a;
    EXPECT_TRUE(xo__pool_addr_parse(s, &a)) << s;
    return a;
}

std::vector<std::string> Connect(const char *address)
{
    xo_pool_addr_t a = Addr(address);
    char urls[XO_ROUTE_MAX][XO_URL_MAX];
    size_t n = xo__route_connect(&a, urls, XO_ROUTE_MAX);
    return std::vector<std::string>(urls, urls + n);
}

std::vector<std::string> Listen(const char *address)
{
    xo_pool_addr_t a = Addr(address);
    std::vector<std::string> out;
    char url[XO_URL_MAX];
    if (xo__route_listen_primary(&a, url)) out.push_back(std::string(url) + " primary");
    xo_route_listen_t ls[XO_ROUTE_MAX];
    size_t n = xo__route_listen(&a, ls, XO_ROUTE_MAX);
    for (size_t i = 0; i < n; i++)
        out.push_back(std::string(ls[i].url) + (ls[i].required ? " required" : ls[i].other_hosts_need_it ? " others" : " optional"));
    return out;
}

using V = std::vector<std::string>;

class Router : public ::testing::Test {
  protected:
    Env t_{"XO_TRANSPORT", nullptr}, u_{"XO_UCX", nullptr}, any_{"XO_LISTEN_ANY", nullptr};
};

TEST_F(Router, ParsesPoolAddresses)
{
    xo_pool_addr_t a;
    ASSERT_TRUE(xo__pool_addr_parse("127.0.0.1:7400/3", &a));
    EXPECT_STREQ("127.0.0.1", a.host);
    EXPECT_EQ(7400u, a.port);
    EXPECT_EQ(3u, a.index);
    ASSERT_TRUE(xo__pool_addr_parse("[::1]:80", &a));
    EXPECT_STREQ("[::1]", a.host);
    EXPECT_EQ(0u, a.index);
    for (const char *bad : {"tcp://1.2.3.4:5", "nohost", ":80", "h:70000", "h:80/", "h:80/x", "h:80x", "[::1]80"})
        EXPECT_FALSE(xo__pool_addr_parse(bad, &a)) << bad;
}

TEST_F(Router, ThisHostTriesShmThenUnixThenTcp)
{
    EXPECT_EQ(V({"shm://xo-127.0.0.1-7400-0", "unix://@xo-127.0.0.1-7400-0.u", "tcp://127.0.0.1:7400"}),
              Connect("127.0.0.1:7400"));
    EXPECT_EQ(V({"shm://xo-127.0.0.1-7400-2", "unix://@xo-127.0.0.1-7400-2.u", "tcp://127.0.0.1:7402"}),
              Connect("127.0.0.1:7400/2"));
    EXPECT_EQ(V({"shm://xo-___1_-80-0", "unix://@xo-___1_-80-0.u", "tcp://[::1]:80"}), Connect("[::1]:80"));
    // A sub pool of a main pool on port 0 has no TCP port.
    EXPECT_EQ(V({"shm://xo-localhost-0-1", "unix://@xo-localhost-0-1.u"}), Connect("localhost:0/1"));
}

TEST_F(Router, OtherHostsOverTcpAndUcxWhenEnabled)
{
    EXPECT_EQ(V({"tcp://10.1.2.3:7401"}), Connect("10.1.2.3:7400/1"));
    Env u("XO_UCX", "1");
    if (!xo__transport_find("ucx")) {
        EXPECT_EQ(V({"tcp://10.1.2.3:7401"}), Connect("10.1.2.3:7400/1"));
        GTEST_SKIP() << "library built without UCX";
    }
    EXPECT_EQ(V({"ucx://10.1.2.3:7901", "tcp://10.1.2.3:7401"}), Connect("10.1.2.3:7400/1"));
    // UCX is for other hosts: this host keeps shm, unix, tcp.
    EXPECT_EQ(V({"shm://xo-127.0.0.1-7400-0", "unix://@xo-127.0.0.1-7400-0.u", "tcp://127.0.0.1:7400"}),
              Connect("127.0.0.1:7400"));
}

TEST_F(Router, XoTransportForcesOneForThisHostAndKeepsTcpForOthers)
{
    {
        Env t("XO_TRANSPORT", "unix");
        EXPECT_EQ(V({"unix://@xo-127.0.0.1-7400-1.u"}), Connect("127.0.0.1:7400/1"));
        EXPECT_EQ(V({"tcp://10.0.0.1:7401"}), Connect("10.0.0.1:7400/1"));
    }
    {
        Env t("XO_TRANSPORT", "tcp");
        EXPECT_EQ(V({"tcp://127.0.0.1:7400"}), Connect("127.0.0.1:7400"));
    }
    {
        Env t("XO_TRANSPORT", "shm");
        EXPECT_EQ(V({"shm://xo-127.0.0.1-7400-0"}), Connect("127.0.0.1:7400"));
    }
    if (xo__transport_find("ucx")) {
        Env t("XO_TRANSPORT", "ucx");
        EXPECT_EQ(V({"ucx://127.0.0.1:7900"}), Connect("127.0.0.1:7400"));
        EXPECT_EQ(V({"ucx://10.0.0.1:7900", "tcp://10.0.0.1:7400"}), Connect("10.0.0.1:7400"));
    }
}

TEST_F(Router, ListenersOfMainAndSubPools)
{
    EXPECT_EQ(V({"tcp://127.0.0.1:7400 primary", "shm://xo-127.0.0.1-7400-0 required",
                 "unix://@xo-127.0.0.1-7400-0.u required"}),
              Listen("127.0.0.1:7400"));
    EXPECT_EQ(V({"shm://xo-127.0.0.1-7400-2 required", "unix://@xo-127.0.0.1-7400-2.u required",
                 "tcp://127.0.0.1:7402 others"}),
              Listen("127.0.0.1:7400/2"));
    EXPECT_EQ(V({"tcp://127.0.0.1:0 primary", "shm://xo-127.0.0.1-0-0 required",
                 "unix://@xo-127.0.0.1-0-0.u required"}),
              Listen("127.0.0.1:0"));
    EXPECT_EQ(V({"shm://xo-127.0.0.1-0-1 required", "unix://@xo-127.0.0.1-0-1.u required"}),
              Listen("127.0.0.1:0/1"));
    Env any("XO_LISTEN_ANY", "1");
    EXPECT_EQ(V({"tcp://0.0.0.0:7400 primary", "shm://xo-10.0.0.5-7400-0 required",
                 "unix://@xo-10.0.0.5-7400-0.u required"}),
              Listen("10.0.0.5:7400"));
    EXPECT_EQ(V({"tcp://[::]:7400 primary", "shm://xo-_fd00__5_-7400-0 required",
                 "unix://@xo-_fd00__5_-7400-0.u required"}),
              Listen("[fd00::5]:7400"));
    Env u("XO_UCX", "1");
    if (xo__transport_find("ucx")) {
        EXPECT_EQ(V({"shm://xo-h-7400-1 required", "unix://@xo-h-7400-1.u required", "ucx://0.0.0.0:7901 optional",
                     "tcp://0.0.0.0:7401 others"}),
                  Listen("h:7400/1"));
    }
}

} // namespace
