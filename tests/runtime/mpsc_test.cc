// The intrusive MPSC queue under real contention: nothing lost, nothing duplicated, per-producer FIFO.
#include <gtest/gtest.h>

#include "tests/runtime/shims.h"

TEST(Mpsc, EmptyQueueBehaviour) { EXPECT_EQ(shim_mpsc_empty_behaviour(), 0); }

TEST(Mpsc, FourProducersOneConsumer)
{
    long received = 0, disorder = -1;
    EXPECT_EQ(shim_mpsc_stress(4, 100000, &received, &disorder), 0) << "items left after all were received";
    EXPECT_EQ(received, 400000);
    EXPECT_EQ(disorder, 0);
}
