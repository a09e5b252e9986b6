#ifndef NORMLAB_EMULATED_ROWS_H
#define NORMLAB_EMULATED_ROWS_H

/// The emulating kernel's element-wise loops over one row in float32 (EmulatedRows), each operation rounded to
/// float32 in the order written, never contracted: a statistic, γ or β is one value for the row (stride 0) or one
/// per position (stride 1).
///   normalize: y = ((x − μ)·rstd)·γ + β.
///   gradient:  dx = rstd·((dy·γ − mean_term) − ((x − μ)·rstd)·projection).
/// Each result is then rounded to `round_to` (its storage format) in the same pass or while still in L1, as
/// `normlab_round_float16` / `normlab_round_bfloat16` round it; counts[0] += the finite values that became ±∞,
/// counts[1] += the values not finite after rounding (counts is not read with NORMLAB_ROUND_NONE).
enum { NORMLAB_ROUND_NONE = 0, NORMLAB_ROUND_FLOAT16 = 1, NORMLAB_ROUND_BFLOAT16 = 2 };

void normlab_emulated_normalize_f32(const float *x, float *y, long count, const float *mean, const float *rstd,
                                    long stat_stride, const float *gamma, long gamma_stride, const float *beta,
                                    long beta_stride, int round_to, long counts[2]);
void normlab_emulated_gradient_f32(const float *x, const float *dy, float *dx, long count, const float *mean,
                                   const float *rstd, const float *mean_term, const float *projection,
                                   long stat_stride, const float *gamma, long gamma_stride, int round_to,
                                   long counts[2]);

#endif
