// The tune profile (cluster/profile.h, docs/tune-profile.md): a good file loads with every figure; each kind of bad
// file is refused with the line and column of the value at fault; write and load round-trip; a profile is compared
// with a cluster's pools.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

extern "C" {
#include "cluster/profile.h"
#include "policies/policy.h"
}

namespace {

const char *kGood = R"({
  "xoscar_profile": 1,
  "cluster": "demo",
  "measured_at": "2026-12-03T16:00:00Z",
  "commit": "c2a1cd1",
  "tool": "xoscar tune demo.yaml --quick",
  "hosts": [{"name": "a", "address": "10.0.0.1", "port": 7100}],
  "pools": [
    {"address": "10.0.0.1:7100/1", "host": "a", "device": ""},
    {"address": "10.0.0.1:7100/2", "host": "a", "device": "host:0"}
  ],
  "pairs": [
    {"from": "10.0.0.1:7100/1", "to": "10.0.0.1:7100/2", "path": "shm",
     "latency_us": {"p50": 9.5, "p99": 20},
     "bandwidth": [{"bytes": 1048576, "median_Bps": 2e9, "min_Bps": 1.5e9, "max_Bps": 2.2e9},
                   {"bytes": 67108864, "median_Bps": 3e9, "min_Bps": 2.5e9, "max_Bps": 3.1e9}]}
  ]
}
)";

xo_profile_t *load_ok(const std::string &text)
{
    xo_profile_t *p = nullptr;
    xo_cluster_error_t err;
    EXPECT_EQ(xo__profile_load_string(text.data(), text.size(), "t.json", &p, &err), XO_OK) << err.text;
    return p;
}

// Replaces the first `from` in kGood by `to`; the test fails if `from` is not there (so no case is vacuous).
std::string edit(const std::string &from, const std::string &to)
{
    std::string s = kGood;
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
}

// Expects text refused with needle in the error, placed at the first occurrence of `at` in text (the value at
// fault), or at line/column when `at` is empty.
void refused(const std::string &text, const std::string &at, const std::string &needle, int line = 0, int column = 0)
{
    if (!at.empty()) {
        size_t pos = text.find(at);
        ASSERT_NE(pos, std::string::npos) << at;
        line = 1;
        column = 1;
        for (size_t i = 0; i < pos; i++) {
            if (text[i] == '\n') {
                line++;
                column = 1;
            } else {
                column++;
            }
        }
    }
    xo_profile_t *p = nullptr;
    xo_cluster_error_t err;
    EXPECT_EQ(xo__profile_load_string(text.data(), text.size(), "t.json", &p, &err), XO_ECONFIG);
    EXPECT_EQ(p, nullptr);
    EXPECT_EQ(err.line, line) << err.text;
    if (column) {
        EXPECT_EQ(err.column, column) << err.text;
    }
    std::string prefix = "t.json:" + std::to_string(line) + ":";
    EXPECT_EQ(std::string(err.text).rfind(prefix, 0), 0u) << err.text;
    EXPECT_NE(std::string(err.text).find(needle), std::string::npos) << err.text << " lacks " << needle;
    EXPECT_STREQ(xo_last_error(), err.text);
}

TEST(Profile, GoodFileLoadsEveryFigure)
{
    xo_profile_t *p = load_ok(kGood);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->version, 1);
    EXPECT_STREQ(p->cluster, "demo");
    EXPECT_EQ(p->measured_unix, 1796313600); // 2026-12-03T16:00:00Z
    EXPECT_STREQ(p->commit, "c2a1cd1");
    ASSERT_EQ(p->n_hosts, 1u);
    EXPECT_EQ(p->hosts[0].port, 7100u);
    ASSERT_EQ(p->n_pools, 2u);
    EXPECT_STREQ(p->pools[1].device, "host:0");
    ASSERT_EQ(p->n_pairs, 1u);
    const xo_profile_pair_t *pr = xo__profile_find_pair(p, "10.0.0.1:7100/1", "10.0.0.1:7100/2");
    ASSERT_NE(pr, nullptr);
    EXPECT_EQ(xo__profile_find_pair(p, "10.0.0.1:7100/2", "10.0.0.1:7100/1"), nullptr); // ordered pairs
    EXPECT_STREQ(pr->path, "shm");
    EXPECT_DOUBLE_EQ(pr->p50_us, 9.5);
    EXPECT_DOUBLE_EQ(pr->p99_us, 20);
    ASSERT_EQ(pr->n_bw, 2u);
    EXPECT_EQ(pr->bw[1].bytes, 64u << 20);
    // The nearest measured size, geometrically: 4 MiB is nearer 1 MiB, 16 MiB nearer 64 MiB.
    EXPECT_DOUBLE_EQ(xo__profile_pair_bandwidth(pr, 4u << 20), 2e9);
    EXPECT_DOUBLE_EQ(xo__profile_pair_bandwidth(pr, 16u << 20), 3e9);
    EXPECT_DOUBLE_EQ(xo__profile_pair_bandwidth(pr, 8), 2e9);
    xo__profile_free(p);
}

TEST(Profile, BadFilesAreRefusedWithTheirLine)
{
    refused("{\"xoscar_profile\": 1,\n  \"cluster\": }", "", "JSON syntax error", 2, 14);
    refused("[1, 2]", "[", "expected an object, got an array");
    refused(edit("\"xoscar_profile\": 1", "\"xoscar_profile\": 3"), "3,", "schema version 3; this build reads versions 1 to 2");
    refused(edit("\"xoscar_profile\": 1", "\"xoscar_profile\": 0"), "0,", "schema version 0; this build reads versions 1 to 2");
    // Version 2's keys are not version 1's: a v1 file that has them is a typo or a mislabelled file.
    refused(edit("\"device\": \"host:0\"", "\"device\": \"host:0\", \"copy_bandwidth\": []"), "[]}",
            "unknown key 'copy_bandwidth' in a pool");
    refused(edit("\"xoscar_profile\": 1", "\"xoscar_profile\": \"1\""), "\"1\"", "expected an integer, got a string");
    refused(edit("\"commit\": \"c2a1cd1\",", ""), "{", "missing key 'commit'");
    refused(edit("\"tool\"", "\"tools\""), "\"xoscar tune", "unknown key 'tools' in a profile");
    refused(edit("2026-12-03T16:00:00Z", "yesterday"), "\"yesterday", "expected a UTC time");
    refused(edit("\"port\": 7100", "\"port\": 70000"), "70000", "expected an integer 0..65535");
    refused(edit("\"host\": \"a\", \"device\": \"\"", "\"host\": \"b\", \"device\": \"\""), "\"b\"",
            "'b' is not one of the profile's hosts");
    refused(edit("\"10.0.0.1:7100/2\", \"host\"", "\"10.0.0.1:7100/1\", \"host\""), "\"10.0.0.1:7100/1\", \"host\": \"a\", \"device\": \"host",
            "duplicate pool");
    refused(edit("\"to\": \"10.0.0.1:7100/2\"", "\"to\": \"10.0.0.1:7100/9\""), "\"10.0.0.1:7100/9\"",
            "'10.0.0.1:7100/9' is not one of the profile's pools");
    refused(edit("\"path\": \"shm\"", "\"path\": \"pigeon\""), "\"pigeon\"", "unknown path 'pigeon'");
    refused(edit("\"p50\": 9.5", "\"p50\": -1"), "-1,", "expected a number > 0, got -1");
    refused(edit("\"p50\": 9.5", "\"p50\": \"fast\""), "\"fast\"", "expected a number, got a string");
    refused(edit("\"p99\": 20", "\"p99\": 2"), "2}", "p99 2 is below p50 9.5");
    refused(edit("\"min_Bps\": 1.5e9", "\"min_Bps\": 2.5e9"), "{\"bytes\": 1048576", "min_Bps <= median_Bps <= max_Bps");
    refused(edit("\"bytes\": 67108864", "\"bytes\": 1048576"), "{\"bytes\": 1048576, \"median_Bps\": 3e9", "sizes must ascend");
    refused(edit("\"bytes\": 67108864", "\"bytes\": 1.5"), "1.5,", "whole number of bytes");
    std::string dup = edit("\n  ]\n}", ",\n    {\"from\": \"10.0.0.1:7100/1\", \"to\": \"10.0.0.1:7100/2\", "
                                       "\"path\": \"tcp\", \"latency_us\": {\"p50\": 1, \"p99\": 1}, \"bandwidth\": []}\n  ]\n}");
    refused(dup, "{\"from\": \"10.0.0.1:7100/1\", \"to\": \"10.0.0.1:7100/2\", \"path\": \"tcp\"",
            "duplicate pair 10.0.0.1:7100/1 -> 10.0.0.1:7100/2 (also pairs[0])");
    refused(edit("\"cluster\": \"demo\"", "\"cluster\": \"demo\", \"cluster\": \"x\""), "", "duplicate object key", 3, 0);
}

// Version 2: device figures per pool (copy bandwidth, launch cost or why there is none) and per pair (the
// device-buffer path and its bandwidth).
const char *kGood2 = R"({
  "xoscar_profile": 2,
  "cluster": "demo",
  "measured_at": "2026-12-03T16:00:00Z",
  "commit": "c2a1cd1",
  "tool": "xoscar tune demo.yaml --quick",
  "hosts": [{"name": "a", "address": "10.0.0.1", "port": 7100}],
  "pools": [
    {"address": "10.0.0.1:7100/1", "host": "a", "device": "host:0",
     "copy_bandwidth": [{"bytes": 1048576, "median_Bps": 9e9, "min_Bps": 8e9, "max_Bps": 1e10}],
     "kernel_launch": {"via": "launch_host", "p50_us": 12, "p99_us": 40}},
    {"address": "10.0.0.1:7100/2", "host": "a", "device": "host:1",
     "kernel_launch": {"none": "launch_host failed: no stream"}}
  ],
  "pairs": [
    {"from": "10.0.0.1:7100/1", "to": "10.0.0.1:7100/2", "path": "shm",
     "latency_us": {"p50": 9.5, "p99": 20},
     "bandwidth": [{"bytes": 1048576, "median_Bps": 2e9, "min_Bps": 1.5e9, "max_Bps": 2.2e9}],
     "device_buf": {"path": "staging", "bandwidth": [{"bytes": 1048576, "median_Bps": 5e8, "min_Bps": 4e8, "max_Bps": 6e8},
                                                     {"bytes": 67108864, "median_Bps": 7e8, "min_Bps": 6e8, "max_Bps": 8e8}]}},
    {"from": "10.0.0.1:7100/2", "to": "10.0.0.1:7100/1", "path": "shm",
     "latency_us": {"p50": 9.5, "p99": 20},
     "bandwidth": [{"bytes": 1048576, "median_Bps": 2e9, "min_Bps": 1.5e9, "max_Bps": 2.2e9}]}
  ]
}
)";

std::string edit2(const std::string &from, const std::string &to)
{
    std::string s = kGood2;
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
}

TEST(Profile, Version2LoadsDeviceFigures)
{
    xo_profile_t *p = load_ok(kGood2);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->version, 2);
    ASSERT_EQ(p->pools[0].n_copy_bw, 1u);
    EXPECT_DOUBLE_EQ(p->pools[0].copy_bw[0].median, 9e9);
    EXPECT_STREQ(p->pools[0].launch_via, "launch_host");
    EXPECT_DOUBLE_EQ(p->pools[0].launch_p99_us, 40);
    EXPECT_EQ(p->pools[1].n_copy_bw, 0u);
    EXPECT_EQ(p->pools[1].launch_via, nullptr);
    EXPECT_STREQ(p->pools[1].launch_none, "launch_host failed: no stream");
    const xo_profile_pair_t *a = xo__profile_find_pair(p, "10.0.0.1:7100/1", "10.0.0.1:7100/2");
    const xo_profile_pair_t *b = xo__profile_find_pair(p, "10.0.0.1:7100/2", "10.0.0.1:7100/1");
    ASSERT_TRUE(a && b);
    EXPECT_STREQ(a->dev_path, "staging");
    ASSERT_EQ(a->n_dev_bw, 2u);
    EXPECT_DOUBLE_EQ(xo__profile_pair_dev_bandwidth(a, 32u << 20), 7e8);
    EXPECT_EQ(b->dev_path, nullptr);
    EXPECT_DOUBLE_EQ(xo__profile_pair_dev_bandwidth(b, 1u << 20), 0);

    // A near hint whose bytes are device buffers costs the device-buffer bandwidth; without the flag, the host one.
    const char *cands[] = {"10.0.0.1:7100/1", "10.0.0.1:7100/2"};
    const char *peers[] = {"10.0.0.1:7100/2"};
    xo_place_near_t host_near[] = {{16u << 20, false, false}}, dev_near[] = {{16u << 20, true, false}};
    xo_pair_cost_t c[2];
    xo__profile_fill_costs(p, cands, 2, peers, host_near, 1, c);
    EXPECT_DOUBLE_EQ(c[0].bandwidth, 2e9);
    EXPECT_DOUBLE_EQ(c[0].latency_us, 9.5);
    xo__profile_fill_costs(p, cands, 2, peers, dev_near, 1, c);
    EXPECT_DOUBLE_EQ(c[0].bandwidth, 7e8);
    EXPECT_DOUBLE_EQ(c[1].bandwidth, 0); // no pair (/2, /2): unknown
    // A pair without device figures has no device bandwidth: unknown for a device hint, not the host figure.
    const char *peers1[] = {"10.0.0.1:7100/1"};
    xo__profile_fill_costs(p, cands + 1, 1, peers1, dev_near, 1, c);
    EXPECT_DOUBLE_EQ(c[0].bandwidth, 0);
    EXPECT_DOUBLE_EQ(c[0].latency_us, 9.5);
    // Inbound (the peer /1 lends its buffers to the new actor in /2): the pair (/1, /2), which has them.
    xo_place_near_t in_near[] = {{16u << 20, true, true}};
    xo__profile_fill_costs(p, cands + 1, 1, peers1, in_near, 1, c);
    EXPECT_DOUBLE_EQ(c[0].bandwidth, 7e8);

    // Written and read back, figure for figure.
    char *buf = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ASSERT_EQ(xo__profile_write(p, mem), XO_OK);
    fclose(mem);
    xo_profile_t *q = load_ok(std::string(buf, len));
    ASSERT_NE(q, nullptr) << buf;
    EXPECT_EQ(q->version, 2);
    EXPECT_STREQ(q->pools[1].launch_none, "launch_host failed: no stream");
    EXPECT_DOUBLE_EQ(q->pools[0].launch_p50_us, 12);
    EXPECT_DOUBLE_EQ(q->pools[0].copy_bw[0].max, 1e10);
    const xo_profile_pair_t *qa = xo__profile_find_pair(q, "10.0.0.1:7100/1", "10.0.0.1:7100/2");
    ASSERT_NE(qa, nullptr);
    EXPECT_STREQ(qa->dev_path, "staging");
    EXPECT_DOUBLE_EQ(qa->dev_bw[1].min, 6e8);
    EXPECT_EQ(xo__profile_find_pair(q, "10.0.0.1:7100/2", "10.0.0.1:7100/1")->dev_path, nullptr);
    free(buf);
    xo__profile_free(p);
    xo__profile_free(q);
}

// The weighted policy with a device-buffer hint: pool A reaches the peer fast for host payloads but must stage device
// buffers; pool B maps the peer's device memory. The flag alone moves the choice from A to B.
TEST(Profile, DeviceBufferHintMovesTheWeightedChoice)
{
    const char *text = R"({"xoscar_profile": 2, "cluster": "d", "measured_at": "2026-12-03T16:00:00Z",
  "commit": "x", "tool": "t", "hosts": [{"name": "h", "address": "10.0.0.1", "port": 1}],
  "pools": [{"address": "A", "host": "h", "device": "host"}, {"address": "B", "host": "h", "device": "host"},
            {"address": "P", "host": "h", "device": "host"}],
  "pairs": [
    {"from": "A", "to": "P", "path": "shm", "latency_us": {"p50": 10, "p99": 10},
     "bandwidth": [{"bytes": 16777216, "median_Bps": 4e9, "min_Bps": 4e9, "max_Bps": 4e9}],
     "device_buf": {"path": "staging", "bandwidth": [{"bytes": 16777216, "median_Bps": 7e8, "min_Bps": 7e8, "max_Bps": 7e8}]}},
    {"from": "B", "to": "P", "path": "shm", "latency_us": {"p50": 10, "p99": 10},
     "bandwidth": [{"bytes": 16777216, "median_Bps": 1e9, "min_Bps": 1e9, "max_Bps": 1e9}],
     "device_buf": {"path": "ipc", "bandwidth": [{"bytes": 16777216, "median_Bps": 5e10, "min_Bps": 5e10, "max_Bps": 5e10}]}}
  ]})";
    xo_profile_t *p = load_ok(text);
    ASSERT_NE(p, nullptr);
    const char *cands[] = {"A", "B"}, *peers[] = {"P"};
    for (bool dev : {false, true}) {
        xo_place_near_t near[] = {{16u << 20, dev, false}};
        xo_pair_cost_t c[2];
        xo__profile_fill_costs(p, cands, 2, peers, near, 1, c);
        xo_pool_view_t views[2] = {};
        for (int i = 0; i < 2; i++) {
            views[i].address = cands[i];
            views[i].process_index = (size_t)i + 1;
            views[i].device_index = -1;
            views[i].near_cost = &c[i];
        }
        xo_place_request_t req = {};
        req.kind = XO_PLACE_WEIGHTED;
        req.near = near;
        req.n_near = 1;
        size_t chosen = 9;
        ASSERT_EQ(xo__place(views, 2, &req, &chosen), XO_OK) << xo_last_error();
        EXPECT_EQ(chosen, dev ? 1u : 0u) << (dev ? "device buffers: B maps P's memory" : "host payloads: A is faster");
    }
    xo__profile_free(p);
}

TEST(Profile, Version2BadDeviceFiguresAreRefusedWithTheirLine)
{
    refused(edit2("\"path\": \"staging\"", "\"path\": \"teleport\""), "\"teleport\"",
            "pairs[0].device_buf.path: unknown device-buffer path 'teleport'");
    refused(edit2("\"path\": \"staging\", \"bandwidth\"", "\"path\": \"staging\", \"bandwith\""), "[{\"bytes\": 1048576, \"median_Bps\": 5e8",
            "unknown key 'bandwith' in device_buf");
    refused(edit2("{\"bytes\": 67108864, \"median_Bps\": 7e8", "{\"bytes\": 1048576, \"median_Bps\": 7e8"),
            "{\"bytes\": 1048576, \"median_Bps\": 7e8", "device_buf.bandwidth[1]: sizes must ascend");
    refused(edit2("\"p50_us\": 12", "\"p50_us\": 0"), "0, \"p99_us\"", "kernel_launch.p50_us: expected a number > 0");
    refused(edit2("\"p99_us\": 40", "\"p99_us\": 4"), "4}", "p99_us 4 is below p50_us 12");
    refused(edit2("\"via\": \"launch_host\"", "\"via\": \"magic\""), "\"magic\"", "unknown launch 'magic'");
    refused(edit2("{\"none\": \"launch_host failed: no stream\"}", "{\"none\": \"x\", \"p50_us\": 1}"), "1}",
            "unknown key 'p50_us' in kernel_launch (with none");
    refused(edit2("{\"none\": \"launch_host failed: no stream\"}", "{\"none\": 5}"), "5}",
            "kernel_launch.none: expected a string, got a number");
    refused(edit2("\"copy_bandwidth\": [", "\"copy_bandwidth\": [7, "), "7,",
            "pools[0].copy_bandwidth[0]: expected an object, got a number");
    refused(edit2("\"device_buf\": {", "\"device_buf\": {\"extra\": 1, "), "1,", "unknown key 'extra' in device_buf");
}

TEST(Profile, UnreadableFileIsAClearError)
{
    xo_profile_t *p = nullptr;
    xo_cluster_error_t err;
    EXPECT_EQ(xo__profile_load("/nonexistent/profile.json", &p, &err), XO_ECONFIG);
    EXPECT_NE(std::string(err.text).find("/nonexistent/profile.json: cannot read the profile: No such file"),
              std::string::npos)
        << err.text;
}

TEST(Profile, WriteThenLoadRoundTrips)
{
    xo_profile_t *p = load_ok(kGood);
    ASSERT_NE(p, nullptr);
    char *buf = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ASSERT_EQ(xo__profile_write(p, mem), XO_OK);
    fclose(mem);
    xo_profile_t *q = load_ok(std::string(buf, len));
    ASSERT_NE(q, nullptr) << buf;
    EXPECT_EQ(q->measured_unix, p->measured_unix);
    ASSERT_EQ(q->n_pairs, 1u);
    EXPECT_DOUBLE_EQ(q->pairs[0].p50_us, 9.5);
    EXPECT_DOUBLE_EQ(q->pairs[0].bw[1].max, 3.1e9);
    EXPECT_STREQ(q->pools[1].device, "host:0");
    free(buf);
    xo__profile_free(p);
    xo__profile_free(q);
}

TEST(Profile, ComparedWithAClusterNamesWhatDiffers)
{
    xo_profile_t *p = load_ok(kGood);
    ASSERT_NE(p, nullptr);
    const char *same[] = {"10.0.0.1:7100/1", "10.0.0.1:7100/2"};
    EXPECT_EQ(xo__profile_compare(p, same, 2, "demo", nullptr), 0u);
    const char *other[] = {"10.0.0.1:7100/1", "10.0.0.1:7100/3"};
    char *buf = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    EXPECT_EQ(xo__profile_compare(p, other, 2, "prod", mem), 3u);
    fclose(mem);
    std::string r(buf, len);
    EXPECT_NE(r.find("measured on cluster 'demo', this is 'prod'"), std::string::npos) << r;
    EXPECT_NE(r.find("pool 10.0.0.1:7100/2 is in the profile, not in the cluster"), std::string::npos) << r;
    EXPECT_NE(r.find("pool 10.0.0.1:7100/3 is in the cluster, not in the profile"), std::string::npos) << r;
    free(buf);
    xo__profile_free(p);
}

} // namespace
