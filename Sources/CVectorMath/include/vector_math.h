#ifndef NORMLAB_VECTOR_MATH_H
#define NORMLAB_VECTOR_MATH_H

/// out[i] = 1 / √(variances[i] + eps) for i < count, in IEEE double arithmetic (the same bits as Swift's
/// `1 / (v + eps).squareRoot()`), vectorised. Swift lowers `squareRoot()` to one scalar sqrt per value with a branch
/// to libm for errno; with per-position statistics (802,816 sets at (8, 64, 56, 56)) that was a large part of a pass.
void normlab_reciprocal_square_roots(const double *variances, double eps, double *out, long count);

#endif
