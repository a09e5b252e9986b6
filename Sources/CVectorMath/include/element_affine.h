#ifndef NORMLAB_ELEMENT_AFFINE_H
#define NORMLAB_ELEMENT_AFFINE_H

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

#endif
