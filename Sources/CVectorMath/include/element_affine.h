#ifndef NORMLAB_ELEMENT_AFFINE_H
#define NORMLAB_ELEMENT_AFFINE_H

/// Whether a row's μ and rstd sit in float32's comfortable range, so its float32 lanes (μ as its nearest float plus a
/// remainder, rstd as a float) keep float32's precision; otherwise the Float64 lanes run. One rule for every float32
/// element-wise loop (C and FastKernels).
static inline int normlab_element_float_lanes_fit(double mean, double rstd) {
    return mean > -0x1p120 && mean < 0x1p120 && rstd >= 0x1p-60 && rstd <= 0x1p60;
}

/// Forward along one row: y = γ·x̂ + β, x̂ = (x − μ)·rstd — for float64 in double; for float32 in float32 lanes with μ's
/// remainder folded into one constant (Float64 lanes, rounded once, when μ or rstd leave float32's comfortable range);
/// gamma NULL is γ = 1 (y = x̂ + β) and beta NULL is β = 0 (still added, so −0 becomes +0 as in the general path).
void normlab_element_affine_apply_f32(const float *x, float *y, long count, double mean, double rstd,
                                      const float *gamma, const float *beta);
void normlab_element_affine_apply_f64(const double *x, double *y, long count, double mean, double rstd,
                                      const double *gamma, const double *beta);

/// Backward along one row of a set with element-wise γ (the element type), x̂ = (x − μ)·rstd in double:
/// sums[0] = Σ γ·dy, sums[1] = Σ γ·dy·x̂ (four interleaved lanes, combined as ((l0 + l1) + (l2 + l3)) + the tail).
void normlab_element_affine_sums_f32(const float *dy, const float *x, long count, double mean, double rstd,
                                     const float *gamma, double sums[2]);
void normlab_element_affine_sums_f64(const double *dy, const double *x, long count, double mean, double rstd,
                                     const double *gamma, double sums[2]);

/// dx = rstd·((γ·dy − mean_term) − x̂·projection), rounded once to the element type; with dgamma and dbeta (both or
/// neither), also dgamma += dy·x̂ and dbeta += dy element by element.
void normlab_element_affine_gradient_f32(const float *dy, const float *x, float *dx, long count, double mean,
                                         double rstd, const float *gamma, double mean_term, double projection,
                                         double *dgamma, double *dbeta);
void normlab_element_affine_gradient_f64(const double *dy, const double *x, double *dx, long count, double mean,
                                         double rstd, const double *gamma, double mean_term, double projection,
                                         double *dgamma, double *dbeta);

/// BatchNorm in eval mode (the statistics are constants): dx = rstd·(γ·dy) rounded once, dgamma += dy·x̂, dbeta += dy.
void normlab_element_affine_eval_gradient_f32(const float *dy, const float *x, float *dx, long count, double mean,
                                              double rstd, const float *gamma, double *dgamma, double *dbeta);
void normlab_element_affine_eval_gradient_f64(const double *dy, const double *x, double *dx, long count, double mean,
                                              double rstd, const double *gamma, double *dgamma, double *dbeta);
/// BatchNorm eval's row in float32 lanes: dx = rstd·(γ·dy) and dy·x̂, dy added into float32 partial sums (the caller
/// adds them into Float64 every eight samples). Returns 0, doing nothing, when μ or rstd is outside float32's
/// comfortable range (the Float64 loop above then runs).
int normlab_element_affine_eval_gradient_f32_lanes(const float *dy, const float *x, float *dx, long count,
                                                   double mean, double rstd, const float *gamma, float *dgamma,
                                                   float *dbeta);

/// BatchNorm in eval, one row of a channel with γ per channel (StridedKernels.evalRowsBackward): dx = dy·scale rounded
/// once to the element type; with `sums` (eight doubles: four lanes of Σdy, then four of Σdy·x̂, x̂ = (x − mean)·rstd)
/// and `tail` (the same two for the elements past the last whole four), those added into — the channel's sums run
/// on over its rows in sample order. Lane by lane the operations of one element alone, in Float64.
void normlab_eval_row_gradient_f32(const float *dy, const float *x, float *dx, long count, double mean, double rstd,
                                   double scale, double *sums, double *tail);
void normlab_eval_row_gradient_f64(const double *dy, const double *x, double *dx, long count, double mean, double rstd,
                                   double scale, double *sums, double *tail);

/// BatchNorm in eval, a run of a sample's elements with per-element constants: dx = dy·scale rounded once to the
/// element type; with `sum_dy` (and `sum_dy_xhat`), dy and dy·x̂ added into them, x̂ = (x − mean)·rstd, in Float64.
void normlab_eval_elements_gradient_f32(const float *dy, const float *x, float *dx, long count, const double *scale,
                                        const double *mean, const double *rstd, double *sum_dy, double *sum_dy_xhat);
void normlab_eval_elements_gradient_f64(const double *dy, const double *x, double *dx, long count, const double *scale,
                                        const double *mean, const double *rstd, double *sum_dy, double *sum_dy_xhat);

/// The gradient of one row (dgamma and dbeta required) and, in the same loop, the sums of the row at next_dy, next_x
/// with the same γ (the same channel in the next sample) and that set's μ and rstd: what the two calls above would
/// give, with γ read once.
void normlab_element_affine_gradient_and_sums_f32(const float *dy, const float *x, float *dx, long count, double mean,
                                                  double rstd, const float *gamma, double mean_term, double projection,
                                                  double *dgamma, double *dbeta, const float *next_dy,
                                                  const float *next_x, double next_mean, double next_rstd,
                                                  double next_sums[2]);
void normlab_element_affine_gradient_and_sums_f64(const double *dy, const double *x, double *dx, long count,
                                                  double mean, double rstd, const double *gamma, double mean_term,
                                                  double projection, double *dgamma, double *dbeta,
                                                  const double *next_dy, const double *next_x, double next_mean,
                                                  double next_rstd, double next_sums[2]);

/// dx of one row with γ per element, dy·x̂ and dy added into float32 stages, and the sums of dx̂ = dy·γ and dx̂·x̂ of
/// the next run (next_dy, next_x, next_gamma): NormLanes' elementwiseGradientStaged on this run and
/// elementwiseGradientSums on the next, to the bit, in one loop that prefetches the next run. constants: μ's float32
/// high part, rstd, the low part times rstd, the mean term and the projection, each rounded to float32 as the lane
/// loops round them; next_constants the next run's first three.
void normlab_element_gradient_and_sums_staged_f32(const float *dy, const float *x, float *dx, const float *gamma,
                                                  long count, const float constants[5], float *stage_gamma,
                                                  float *stage_beta, const float *next_dy, const float *next_x,
                                                  const float *next_gamma, const float next_constants[3],
                                                  double sums[2]);

#endif
