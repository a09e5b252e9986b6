#include "element_affine.h"

#include <string.h>

// The row loops of element-wise γ (FastKernels' `elementAffineBackward` and the rows path): four lanes of IEEE
// double, lane by lane the same operations as one element alone, never contracted into fused multiply-adds — so the
// AVX2 build and the baseline build give the same bits.
#pragma clang fp contract(off)

#include "clones.h"

typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

#define load4_float(p) ({ v4f v_; memcpy(&v_, (p), sizeof v_); __builtin_convertvector(v_, v4d); })
#define load4_double(p) ({ v4d v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store4_float(p, v) do { v4f n_ = __builtin_convertvector((v), v4f); memcpy((p), &n_, sizeof n_); } while (0)
#define store4_double(p, v) do { v4d n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define load4_wide(p) load4_double(p)

#define NORMLAB_ELEMENT_SUMS(T, SUFFIX)                                                                                \
    NORMLAB_CLONES                                                                                                    \
    void normlab_element_affine_sums_##SUFFIX(const T *dy, const T *x, long count, double mean, double rstd,          \
                                              const T *gamma, double sums[2]) {                                       \
        const v4d mv = {mean, mean, mean, mean}, rv = {rstd, rstd, rstd, rstd};                                       \
        v4d d4 = {0, 0, 0, 0}, dh4 = {0, 0, 0, 0};                                                                    \
        long i = 0;                                                                                                   \
        for (; i + 4 <= count; i += 4) {                                                                              \
            v4d dh = load4_##T(dy + i) * load4_##T(gamma + i);                                                        \
            d4 += dh;                                                                                                 \
            dh4 += dh * ((load4_##T(x + i) - mv) * rv);                                                               \
        }                                                                                                             \
        double d1 = 0, dh1 = 0;                                                                                       \
        for (; i < count; i++) {                                                                                      \
            double dh = (double)dy[i] * (double)gamma[i];                                                            \
            d1 += dh;                                                                                                 \
            dh1 += dh * (((double)x[i] - mean) * rstd);                                                               \
        }                                                                                                             \
        sums[0] = ((d4[0] + d4[1]) + (d4[2] + d4[3])) + d1;                                                           \
        sums[1] = ((dh4[0] + dh4[1]) + (dh4[2] + dh4[3])) + dh1;                                                      \
    }

#define NORMLAB_ELEMENT_GRADIENT(T, SUFFIX)                                                                            \
    NORMLAB_CLONES                                                                                                    \
    void normlab_element_affine_gradient_##SUFFIX(const T *dy, const T *x, T *dx, long count, double mean,            \
                                                  double rstd, const T *gamma, double mean_term, double projection,   \
                                                  double *dgamma, double *dbeta) {                                    \
        const v4d mv = {mean, mean, mean, mean}, rv = {rstd, rstd, rstd, rstd};                                       \
        const v4d tv = {mean_term, mean_term, mean_term, mean_term};                                                  \
        const v4d pv = {projection, projection, projection, projection};                                              \
        long i = 0;                                                                                                   \
        if (dgamma && dbeta) {                                                                                        \
            for (; i + 4 <= count; i += 4) {                                                                          \
                v4d d = load4_##T(dy + i), h = (load4_##T(x + i) - mv) * rv;                                          \
                store4_##T(dx + i, rv * ((d * load4_##T(gamma + i) - tv) - h * pv));                                  \
                store4_double(dgamma + i, load4_wide(dgamma + i) + d * h);                                            \
                store4_double(dbeta + i, load4_wide(dbeta + i) + d);                                                  \
            }                                                                                                         \
            for (; i < count; i++) {                                                                                  \
                double d = (double)dy[i], h = ((double)x[i] - mean) * rstd;                                           \
                dx[i] = (T)(rstd * ((d * (double)gamma[i] - mean_term) - h * projection));                            \
                dgamma[i] += d * h;                                                                                   \
                dbeta[i] += d;                                                                                        \
            }                                                                                                         \
        } else {                                                                                                      \
            for (; i + 4 <= count; i += 4) {                                                                          \
                v4d d = load4_##T(dy + i), h = (load4_##T(x + i) - mv) * rv;                                          \
                store4_##T(dx + i, rv * ((d * load4_##T(gamma + i) - tv) - h * pv));                                  \
            }                                                                                                         \
            for (; i < count; i++) {                                                                                  \
                double d = (double)dy[i], h = ((double)x[i] - mean) * rstd;                                           \
                dx[i] = (T)(rstd * ((d * (double)gamma[i] - mean_term) - h * projection));                            \
            }                                                                                                         \
        }                                                                                                             \
    }

NORMLAB_ELEMENT_SUMS(float, f32)
NORMLAB_ELEMENT_SUMS(double, f64)
NORMLAB_ELEMENT_GRADIENT(float, f32)
NORMLAB_ELEMENT_GRADIENT(double, f64)
