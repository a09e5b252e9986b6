#include "vector_math.h"

#include <math.h>

// No contraction into fused operations: each step is rounded as Swift rounds it.
#pragma clang fp contract(off)

#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_sqrt)
#define NORMLAB_SQRT __builtin_elementwise_sqrt  // no errno, so the loop vectorises
#endif
#endif
#ifndef NORMLAB_SQRT
#define NORMLAB_SQRT sqrt
#endif

void normlab_reciprocal_square_roots(const double *restrict variances, double eps, double *restrict out, long count) {
    for (long i = 0; i < count; i++) {
        out[i] = 1.0 / NORMLAB_SQRT(variances[i] + eps);
    }
}
