// The error text that travels with a status (base/status.c): wrapping the current text into itself, prefixing it,
// and keeping it bounded.
#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace {

TEST(ErrorText, SettingWithTheCurrentTextAsAnArgumentWrapsIt)
{
    xo__error_set(XO_EINVAL, "root cause %d", 7);
    for (int i = 0; i < 3; i++) EXPECT_EQ(xo__error_set(XO_EINVAL, "wrapped: %s", xo_last_error()), XO_EINVAL);
    EXPECT_STREQ(xo_last_error(), "wrapped: wrapped: wrapped: root cause 7");
    xo__error_set(XO_ENOTSUP, "%s", xo_last_error()); // a plain copy onto itself keeps the text
    EXPECT_STREQ(xo_last_error(), "wrapped: wrapped: wrapped: root cause 7");
}

TEST(ErrorText, PrefixPutsTheFormattedTextBeforeTheCurrentOne)
{
    xo__error_set(XO_EMSGSIZE, "5456");
    EXPECT_EQ(xo__error_prefix(XO_EMSGSIZE, "cannot send to pool %s", "127.0.0.1:1/2"), XO_EMSGSIZE);
    EXPECT_STREQ(xo_last_error(), "cannot send to pool 127.0.0.1:1/2: 5456");
    xo__error_prefix(XO_EMSGSIZE, "again");
    EXPECT_STREQ(xo_last_error(), "again: cannot send to pool 127.0.0.1:1/2: 5456");
    // With no current text, the status's own message is what it prefixes.
    xo__error_clear();
    xo__error_prefix(XO_ETIMEDOUT, "waiting for %s", "x");
    EXPECT_STREQ(xo_last_error(), "waiting for x: call timed out");
}

TEST(ErrorText, WrappingStaysWithinTheBufferAndTerminated)
{
    std::string big(2 * XO_ERROR_TEXT_MAX, 'x');
    xo__error_set(XO_EINVAL, "%s", big.c_str());
    EXPECT_EQ(strlen(xo_last_error()), (size_t)XO_ERROR_TEXT_MAX - 1);
    for (int i = 0; i < 4; i++) xo__error_prefix(XO_EINVAL, "layer %d", i);
    std::string got = xo_last_error();
    EXPECT_EQ(got.size(), (size_t)XO_ERROR_TEXT_MAX - 1);
    EXPECT_EQ(got.rfind("layer 3: layer 2: layer 1: layer 0: xxx", 0), 0u) << got.substr(0, 60);
    // A long prefix alone fills the buffer; the current text is cut, not overrun.
    xo__error_set(XO_EINVAL, "cause");
    xo__error_prefix(XO_EINVAL, "%s", big.c_str());
    EXPECT_EQ(strlen(xo_last_error()), (size_t)XO_ERROR_TEXT_MAX - 1);
}

TEST(ErrorText, SetTextFromTheCurrentTextKeepsItsPrefix)
{
    xo__error_set(XO_EINVAL, "abcdef");
    xo__error_set_text(XO_EINVAL, xo_last_error() + 2, 3);
    EXPECT_STREQ(xo_last_error(), "cde");
}

} // namespace
