// base/log.c: the line's format (ISO 8601 UTC with microseconds, the writer's name and pid) and the file sink.
#include <fcntl.h>
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

std::string slurp(const std::string &path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

size_t count(const std::string &text, const std::string &what)
{
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
    return n;
}

// Runs body in a child (the sinks are per process, set once) and expects it to exit 0.
template <typename F> void in_child(F body)
{
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        body();
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

std::string temp_path()
{
    char path[] = "/tmp/xo-log-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    return path;
}

TEST(Log, LevelNames)
{
    xo_log_level_t level = XO_LOG_ERROR;
    EXPECT_TRUE(xo__log_parse_level("DEBUG", &level));
    EXPECT_EQ(level, XO_LOG_DEBUG);
    EXPECT_FALSE(xo__log_parse_level("loud", &level));
    EXPECT_FALSE(xo__log_parse_level(nullptr, &level));
    EXPECT_EQ(level, XO_LOG_DEBUG) << "a bad name changed the level";
    for (int i = XO_LOG_ERROR; i <= XO_LOG_TRACE; i++) {
        ASSERT_TRUE(xo__log_parse_level(xo__log_level_name((xo_log_level_t)i), &level));
        EXPECT_EQ(level, i);
    }
}

// A daemon's stderr is its log file (xoscar up): with XO_LOG_FILE naming that file too, each line is there once.
TEST(Log, StderrThatIsTheFileGetsEachLineOnce)
{
    std::string path = temp_path();
    in_child([&] {
        int fd = open(path.c_str(), O_WRONLY | O_APPEND);
        dup2(fd, STDERR_FILENO);
        close(fd);
        setenv("XO_LOG_FILE", path.c_str(), 1);
        xo_log_error("only once");
    });
    std::string text = slurp(path);
    unlink(path.c_str());
    EXPECT_EQ(count(text, "only once"), 1u) << text;
}

TEST(Log, SetFileMovesTheLinesAfterIt)
{
    std::string a = temp_path(), b = temp_path();
    in_child([&] {
        setenv("XO_LOG_FILE", a.c_str(), 1);
        xo_log_error("first");
        if (!xo__log_set_file(b.c_str())) _exit(3);
        xo_log_error("second");
        if (xo__log_set_file("/nonexistent-dir/x.log")) _exit(4); /* refused: stderr only from then on */
        xo_log_error("third");
    });
    std::string ta = slurp(a), tb = slurp(b);
    unlink(a.c_str());
    unlink(b.c_str());
    EXPECT_EQ(count(ta, "first"), 1u);
    EXPECT_EQ(count(ta, "second"), 0u) << ta;
    EXPECT_EQ(count(tb, "second"), 1u) << tb;
    EXPECT_EQ(count(ta + tb, "third"), 0u);
}

TEST(Log, EchoUntilCleared)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    in_child([&] {
        close(fds[0]);
        xo__log_set_echo(fds[1]);
        xo_log_warn("echoed");
        xo__log_set_echo(-1); /* closes fds[1]: the reader sees EOF */
        xo_log_warn("not echoed");
    });
    close(fds[1]);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, (size_t)n);
    close(fds[0]);
    EXPECT_EQ(count(got, "echoed"), 1u) << got;
    EXPECT_EQ(count(got, "not echoed"), 0u) << got;
}

} // namespace
