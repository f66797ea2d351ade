// base/log.c: the line's format (ISO 8601 UTC with microseconds, the writer's name and pid) and the file sink.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "base/log.h"

namespace {

// Runs in a child: XO_LOG_FILE is read once per process, at its first line.
TEST(Log, LinesGoToTheFileWithTimeNameAndPid)
{
    char path[] = "/tmp/xo-log-test-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        setenv("XO_LOG_FILE", path, 1);
        xo__log_set_name("127.0.0.1:7300/2");
        xo_log_error("first %d", 1);
        xo_log_warn("second");
        xo_log_debug("not shown at the default level");
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    unlink(path);
    std::string pid = std::to_string(child);
    std::regex line("\\[([EW]) \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z 127\\.0\\.0\\.1:7300/2 pid " + pid +
                    " \\S+ log_test\\.cc:\\d+\\] (.*)");
    std::string l1, l2, l3;
    std::getline(text, l1);
    std::getline(text, l2);
    EXPECT_FALSE(std::getline(text, l3)) << "a line below the threshold was written: " << l3;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l1, m, line)) << l1;
    EXPECT_EQ(m[1], "E");
    EXPECT_EQ(m[2], "first 1");
    ASSERT_TRUE(std::regex_match(l2, m, line)) << l2;
    EXPECT_EQ(m[2], "second");
}

} // namespace
