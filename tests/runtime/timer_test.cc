// The pool timer thread: deadline order, removal, no firing after removal, drop on stop.
#include <gtest/gtest.h>

#include "tests/runtime/shims.h"

TEST(Timer, FiresInDeadlineOrderAndHonoursRemoval)
{
    int order[20] = {0};
    int fired = 0;
    ASSERT_EQ(shim_timer_order(order, 20, &fired), 0);
    ASSERT_EQ(fired, 18);
    for (int k = 1; k < fired; k++) EXPECT_GT(order[k - 1], order[k]) << "at " << k;
    for (int k = 0; k < fired; k++) EXPECT_TRUE(order[k] != 5 && order[k] != 19);
}

TEST(Timer, StopHandsQueuedTimersToTheirDropFunction) { EXPECT_EQ(shim_timer_drop_on_stop(), 0); }
