#ifndef NORMLAB_POWER_OF_TWO_H
#define NORMLAB_POWER_OF_TWO_H

#include <math.h>

// v / 2^k and v · 2^−k are the same correctly rounded value (one rounding of the same real number), so the column
// kernels divide by a power-of-two set size by multiplying: one division less per set where sets hold 2, 4, 8 …
static inline int normlab_power_of_two(double v) {
    int exponent;
    return v > 0 && frexp(v, &exponent) == 0.5;
}

#endif
