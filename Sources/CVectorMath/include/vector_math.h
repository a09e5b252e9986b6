#ifndef NORMLAB_VECTOR_MATH_H
#define NORMLAB_VECTOR_MATH_H

#include "column_sets.h"
#include "element_affine.h"
#include "emulated_chains.h"
#include "emulated_rows.h"

/// out[i] = 1 / √(variances[i] + eps) for i < count, in IEEE double arithmetic (the same bits as Swift's
/// `1 / (v + eps).squareRoot()`), vectorised. Swift lowers `squareRoot()` to one scalar sqrt per value with a branch
/// to libm for errno; with per-position statistics (802,816 sets at (8, 64, 56, 56)) that was a large part of a pass.
void normlab_reciprocal_square_roots(const double *variances, double eps, double *out, long count);


/// Round each float to bfloat16 in place (nearest, ties to even); counts finite values that became ±inf and all
/// values that are not finite afterwards.
void normlab_round_bfloat16(float *values, long count, long *overflowed, long *non_finite);

/// Round each float to float16 in place (nearest, ties to even, subnormals kept, past 65504 to ±inf); the same counts.
void normlab_round_float16(float *values, long count, long *overflowed, long *non_finite);

/// The same without F16C (bit operations), which `normlab_round_float16` uses on CPUs that lack it; for tests.
void normlab_round_float16_portable(float *values, long count, long *overflowed, long *non_finite);

/// Whether any of `count` values is NaN or ±∞.
int normlab_has_non_finite_f32(const float *values, long count);
int normlab_has_non_finite_f64(const double *values, long count);

/// out[i] = keep·old[i] + momentum·batch[i] in Float64, rounded once to the element type: BatchNorm's running
/// statistics, each element as `NormLayer.blend` makes it (no fused multiply-add).
void normlab_blend_f32(const float *old, const float *batch, float *out, long count, double keep, double momentum);
void normlab_blend_f64(const double *old, const double *batch, double *out, long count, double keep, double momentum);

/// sum[i] = sum[i] + values[i], one rounding each, as a plain loop makes it.
void normlab_add_into_f32(float *sum, const float *values, long count);
void normlab_add_into_f64(double *sum, const double *values, long count);

/// *sum += Σd and *square += Σd² over x[0 ..< count], d = x − shift in Float64 (each float widened exactly), in no
/// particular order: the exact statistics that judge an emulated pass (`EmulatedKernels.exactStatistics`).
void normlab_add_shifted_sums_f32(const float *x, long count, double shift, double *sum, double *square);

#endif
