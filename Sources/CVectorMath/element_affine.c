#include "element_affine.h"

#include <string.h>

// The row loops of element-wise γ, β (FastKernels' rows path, `elementAffineBackward`, BatchNorm eval): four lanes of IEEE
// double, lane by lane the same operations as one element alone, never contracted into fused multiply-adds — so the
// AVX-512F, AVX2 and baseline builds give the same bits.
#pragma clang fp contract(off)

#include "clones.h"

typedef double v4d __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

#define load4_float(p) ({ v4f v_; memcpy(&v_, (p), sizeof v_); __builtin_convertvector(v_, v4d); })
#define load4_double(p) ({ v4d v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store4_float(p, v) do { v4f n_ = __builtin_convertvector((v), v4f); memcpy((p), &n_, sizeof n_); } while (0)
#define store4_double(p, v) do { v4d n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define load4_wide(p) load4_double(p)

#define NORMLAB_ELEMENT_APPLY(T, SUFFIX)                                                                               \
    NORMLAB_CLONES                                                                                                    \
    void normlab_element_affine_apply_##SUFFIX(const T *x, T *y, long count, double mean, double rstd,               \
                                               const T *gamma, const T *beta) {                                      \
        const v4d mv = {mean, mean, mean, mean}, rv = {rstd, rstd, rstd, rstd}, zero = {0, 0, 0, 0};                  \
        long i = 0;                                                                                                   \
        for (; i + 4 <= count; i += 4) {                                                                              \
            v4d h = (load4_##T(x + i) - mv) * rv;                                                                     \
            if (gamma) h = h * load4_##T(gamma + i);                                                                  \
            store4_##T(y + i, h + (beta ? load4_##T(beta + i) : zero));                                               \
        }                                                                                                             \
        for (; i < count; i++) {                                                                                      \
            double h = ((double)x[i] - mean) * rstd;                                                                  \
            if (gamma) h = h * (double)gamma[i];                                                                      \
            y[i] = (T)(h + (beta ? (double)beta[i] : 0.0));                                                           \
        }                                                                                                             \
    }

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

#define NORMLAB_ELEMENT_GRADIENT_AND_SUMS(T, SUFFIX)                                                                   \
    NORMLAB_CLONES                                                                                                    \
    void normlab_element_affine_gradient_and_sums_##SUFFIX(                                                           \
        const T *dy, const T *x, T *dx, long count, double mean, double rstd, const T *gamma, double mean_term,       \
        double projection, double *dgamma, double *dbeta, const T *next_dy, const T *next_x, double next_mean,        \
        double next_rstd, double next_sums[2]) {                                                                      \
        const v4d mv = {mean, mean, mean, mean}, rv = {rstd, rstd, rstd, rstd};                                       \
        const v4d tv = {mean_term, mean_term, mean_term, mean_term};                                                  \
        const v4d pv = {projection, projection, projection, projection};                                              \
        const v4d nmv = {next_mean, next_mean, next_mean, next_mean};                                                 \
        const v4d nrv = {next_rstd, next_rstd, next_rstd, next_rstd};                                                 \
        v4d d4 = {0, 0, 0, 0}, dh4 = {0, 0, 0, 0};                                                                    \
        long i = 0;                                                                                                   \
        for (; i + 4 <= count; i += 4) {                                                                              \
            v4d g = load4_##T(gamma + i);                                                                             \
            v4d d = load4_##T(dy + i), h = (load4_##T(x + i) - mv) * rv;                                              \
            store4_##T(dx + i, rv * ((d * g - tv) - h * pv));                                                         \
            store4_double(dgamma + i, load4_wide(dgamma + i) + d * h);                                                \
            store4_double(dbeta + i, load4_wide(dbeta + i) + d);                                                      \
            v4d ndh = load4_##T(next_dy + i) * g;                                                                     \
            d4 += ndh;                                                                                                \
            dh4 += ndh * ((load4_##T(next_x + i) - nmv) * nrv);                                                       \
        }                                                                                                             \
        double d1 = 0, dh1 = 0;                                                                                       \
        for (; i < count; i++) {                                                                                      \
            double g = (double)gamma[i], d = (double)dy[i], h = ((double)x[i] - mean) * rstd;                         \
            dx[i] = (T)(rstd * ((d * g - mean_term) - h * projection));                                               \
            dgamma[i] += d * h;                                                                                       \
            dbeta[i] += d;                                                                                            \
            double ndh = (double)next_dy[i] * g;                                                                      \
            d1 += ndh;                                                                                                \
            dh1 += ndh * (((double)next_x[i] - next_mean) * next_rstd);                                               \
        }                                                                                                             \
        next_sums[0] = ((d4[0] + d4[1]) + (d4[2] + d4[3])) + d1;                                                      \
        next_sums[1] = ((dh4[0] + dh4[1]) + (dh4[2] + dh4[3])) + dh1;                                                 \
    }

#define NORMLAB_ELEMENT_EVAL_GRADIENT(T, SUFFIX)                                                                       \
    NORMLAB_CLONES                                                                                                    \
    void normlab_element_affine_eval_gradient_##SUFFIX(const T *dy, const T *x, T *dx, long count, double mean,      \
                                                       double rstd, const T *gamma, double *dgamma, double *dbeta) {  \
        const v4d mv = {mean, mean, mean, mean}, rv = {rstd, rstd, rstd, rstd};                                       \
        long i = 0;                                                                                                   \
        for (; i + 4 <= count; i += 4) {                                                                              \
            v4d d = load4_##T(dy + i), h = (load4_##T(x + i) - mv) * rv;                                              \
            store4_##T(dx + i, rv * (d * load4_##T(gamma + i)));                                                      \
            store4_double(dgamma + i, load4_wide(dgamma + i) + d * h);                                                \
            store4_double(dbeta + i, load4_wide(dbeta + i) + d);                                                      \
        }                                                                                                             \
        for (; i < count; i++) {                                                                                      \
            double d = (double)dy[i], h = ((double)x[i] - mean) * rstd;                                               \
            dx[i] = (T)(rstd * (d * (double)gamma[i]));                                                               \
            dgamma[i] += d * h;                                                                                       \
            dbeta[i] += d;                                                                                            \
        }                                                                                                             \
    }

#define NORMLAB_EVAL_ROW_GRADIENT(T, SUFFIX)                                                                           \
    NORMLAB_CLONES                                                                                                    \
    void normlab_eval_row_gradient_##SUFFIX(const T *dy, const T *x, T *dx, long count, double mean, double rstd,     \
                                            double scale, double *sums, double *tail) {                               \
        const v4d mv = {mean, mean, mean, mean}, rv = {rstd, rstd, rstd, rstd}, sv = {scale, scale, scale, scale};    \
        v4d d4 = {0, 0, 0, 0}, dh4 = d4;                                                                              \
        if (sums) d4 = load4_double(sums), dh4 = load4_double(sums + 4);                                              \
        long i = 0;                                                                                                   \
        for (; i + 4 <= count; i += 4) {                                                                              \
            v4d d = load4_##T(dy + i);                                                                                \
            store4_##T(dx + i, d * sv);                                                                               \
            if (sums) {                                                                                               \
                d4 += d;                                                                                              \
                dh4 += d * ((load4_##T(x + i) - mv) * rv);                                                            \
            }                                                                                                         \
        }                                                                                                             \
        for (; i < count; i++) {                                                                                      \
            double d = (double)dy[i];                                                                                 \
            dx[i] = (T)(d * scale);                                                                                   \
            if (sums) {                                                                                               \
                tail[0] += d;                                                                                         \
                tail[1] += d * (((double)x[i] - mean) * rstd);                                                        \
            }                                                                                                         \
        }                                                                                                             \
        if (sums) {                                                                                                   \
            store4_double(sums, d4);                                                                                  \
            store4_double(sums + 4, dh4);                                                                             \
        }                                                                                                             \
    }

// BatchNorm in eval with per-element constants along a sample's row (StridedKernels.evalBackward,
// evalColumnsBackward): each element's steps as the Swift lanes made them, four doubles at a time with AVX2 rather
// than two without it (BatchNorm eval on (4096, 768): 2.8 ms of Swift lanes per backward).
#define NORMLAB_EVAL_ELEMENTS_GRADIENT(T, SUFFIX)                                                                      \
    NORMLAB_CLONES                                                                                                    \
    void normlab_eval_elements_gradient_##SUFFIX(const T *dy, const T *x, T *dx, long count, const double *scale,     \
                                                 const double *mean, const double *rstd, double *sum_dy,              \
                                                 double *sum_dy_xhat) {                                               \
        long i = 0;                                                                                                   \
        for (; i + 4 <= count; i += 4) {                                                                              \
            v4d d = load4_##T(dy + i);                                                                                \
            store4_##T(dx + i, d * load4_double(scale + i));                                                          \
            if (sum_dy) {                                                                                             \
                store4_double(sum_dy + i, load4_double(sum_dy + i) + d);                                              \
                v4d h = (load4_##T(x + i) - load4_double(mean + i)) * load4_double(rstd + i);                         \
                store4_double(sum_dy_xhat + i, load4_double(sum_dy_xhat + i) + d * h);                                \
            }                                                                                                         \
        }                                                                                                             \
        for (; i < count; i++) {                                                                                      \
            double d = (double)dy[i];                                                                                 \
            dx[i] = (T)(d * scale[i]);                                                                                \
            if (sum_dy) {                                                                                             \
                sum_dy[i] += d;                                                                                       \
                sum_dy_xhat[i] += d * (((double)x[i] - mean[i]) * rstd[i]);                                           \
            }                                                                                                         \
        }                                                                                                             \
    }

NORMLAB_EVAL_ELEMENTS_GRADIENT(float, f32)
NORMLAB_EVAL_ELEMENTS_GRADIENT(double, f64)
NORMLAB_EVAL_ROW_GRADIENT(float, f32)
NORMLAB_EVAL_ROW_GRADIENT(double, f64)
NORMLAB_ELEMENT_EVAL_GRADIENT(float, f32)
NORMLAB_ELEMENT_EVAL_GRADIENT(double, f64)
NORMLAB_ELEMENT_GRADIENT_AND_SUMS(float, f32)
NORMLAB_ELEMENT_GRADIENT_AND_SUMS(double, f64)
NORMLAB_ELEMENT_APPLY(float, f32_wide)

typedef float v8f __attribute__((vector_size(32)));

// float32 rows in eight float32 lanes, as the float32 column kernels (column_sets_f32.c): x̂ = (x − μf)·rstd + c with
// μf = float(μ) and μ's remainder in c = float(−(μ − μf)·rstd), then γ·x̂ + β. A row whose μ or rstd is outside
// float32's comfortable range runs in the Float64 lanes above.
NORMLAB_CLONES
void normlab_element_affine_apply_f32(const float *x, float *y, long count, double mean, double rstd,
                                      const float *gamma, const float *beta) {
    if (!normlab_element_float_lanes_fit(mean, rstd)) {
        normlab_element_affine_apply_f32_wide(x, y, count, mean, rstd, gamma, beta);
        return;
    }
    const float mf = (float)mean, rf = (float)rstd, c = (float)(-(mean - (double)mf) * (double)rf);
    const v8f mv = {mf, mf, mf, mf, mf, mf, mf, mf}, rv = {rf, rf, rf, rf, rf, rf, rf, rf};
    const v8f cv = {c, c, c, c, c, c, c, c}, zero = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        v8f v, g, b = zero;
        memcpy(&v, x + i, sizeof v);
        v8f h = (v - mv) * rv + cv;
        if (gamma) { memcpy(&g, gamma + i, sizeof g); h = h * g; }
        if (beta) memcpy(&b, beta + i, sizeof b);
        h = h + b;
        memcpy(y + i, &h, sizeof h);
    }
    for (; i < count; i++) {
        float h = (x[i] - mf) * rf + c;
        if (gamma) h = h * gamma[i];
        y[i] = h + (beta ? beta[i] : 0.0f);
    }
}
// BatchNorm eval's backward on float32 rows in float32 lanes, x̂ made as normlab_element_affine_apply_f32 makes it;
// dγ's and dβ's terms added into float32 partial sums, at most eight samples deep before the caller's Float64.
NORMLAB_CLONES
int normlab_element_affine_eval_gradient_f32_lanes(const float *dy, const float *x, float *dx, long count,
                                                   double mean, double rstd, const float *gamma, float *dgamma,
                                                   float *dbeta) {
    if (!normlab_element_float_lanes_fit(mean, rstd)) return 0;
    const float mf = (float)mean, rf = (float)rstd, c = (float)(-(mean - (double)mf) * (double)rf);
    const v8f mv = {mf, mf, mf, mf, mf, mf, mf, mf}, rv = {rf, rf, rf, rf, rf, rf, rf, rf};
    const v8f cv = {c, c, c, c, c, c, c, c};
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        v8f v, d, g, sg, sb;
        memcpy(&v, x + i, sizeof v);
        memcpy(&d, dy + i, sizeof d);
        memcpy(&g, gamma + i, sizeof g);
        memcpy(&sg, dgamma + i, sizeof sg);
        memcpy(&sb, dbeta + i, sizeof sb);
        v8f h = (v - mv) * rv + cv, out = rv * (d * g);
        sg = sg + d * h;
        sb = sb + d;
        memcpy(dx + i, &out, sizeof out);
        memcpy(dgamma + i, &sg, sizeof sg);
        memcpy(dbeta + i, &sb, sizeof sb);
    }
    for (; i < count; i++) {
        float h = (x[i] - mf) * rf + c;
        dx[i] = rf * (dy[i] * gamma[i]);
        dgamma[i] = dgamma[i] + dy[i] * h;
        dbeta[i] = dbeta[i] + dy[i];
    }
    return 1;
}
NORMLAB_ELEMENT_APPLY(double, f64)
NORMLAB_ELEMENT_SUMS(float, f32)
NORMLAB_ELEMENT_SUMS(double, f64)
NORMLAB_ELEMENT_GRADIENT(float, f32)
NORMLAB_ELEMENT_GRADIENT(double, f64)
