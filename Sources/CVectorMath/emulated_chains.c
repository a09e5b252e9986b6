#include "emulated_chains.h"

#include <string.h>

// Lane-wise IEEE float operations in the order the scalar chains make them; no fused multiply-adds.
#pragma clang fp contract(off)

#include "clones.h"

typedef float v8f __attribute__((vector_size(32)));

#define load8(p) ({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })

// in[k] holds elements 0…7 of lane k; out[j] holds element j of lanes 0…7.
static inline void transpose8(const v8f in[8], v8f out[8]) {
    v8f t0 = __builtin_shufflevector(in[0], in[1], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t1 = __builtin_shufflevector(in[0], in[1], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t2 = __builtin_shufflevector(in[2], in[3], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t3 = __builtin_shufflevector(in[2], in[3], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t4 = __builtin_shufflevector(in[4], in[5], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t5 = __builtin_shufflevector(in[4], in[5], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t6 = __builtin_shufflevector(in[6], in[7], 0, 8, 1, 9, 4, 12, 5, 13);
    v8f t7 = __builtin_shufflevector(in[6], in[7], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
    v8f u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
    v8f u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
    v8f u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
    v8f u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    out[0] = __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
    out[4] = __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
    out[1] = __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
    out[5] = __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
    out[2] = __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
    out[6] = __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
    out[3] = __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
    out[7] = __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
}

typedef int v8i __attribute__((vector_size(32)));

// |v| lane by lane (the sign bit cleared: exact, NaN stays NaN).
static inline v8f magnitude(v8f v) { return (v8f)((v8i)v & 0x7fffffff); }

// One element of every lane: the step of `kind`.
#define CHAIN_STEP(xv, dv, gv)                                                                                        \
    {                                                                                                                 \
        if (kind == 0) {                                                                                              \
            v8f h = ((xv) - mv) * rv, g = (dv) * (gv);                                                                \
            a = a + g;                                                                                                \
            b = b + g * h;                                                                                            \
        } else if (kind == 1) {                                                                                       \
            v8f h = ((xv) - mv) * rv;                                                                                 \
            a = a + (dv) * h;                                                                                         \
            b = b + (dv);                                                                                             \
        } else if (kind == 5) {                                                                                       \
            v8f h = ((xv) - mv) * rv, g = (dv) * (gv);                                                                \
            a = a + g;                                                                                                \
            b = b + g * h;                                                                                            \
            pa = pa + (dv) * h;                                                                                       \
            pb = pb + (dv);                                                                                           \
        } else if (kind == 2) {                                                                                       \
            a = a + (xv);                                                                                             \
        } else if (kind == 6) {                                                                                       \
            a = a + (xv);                                                                                             \
            b = b + magnitude(xv);                                                                                    \
        } else if (kind == 3) {                                                                                       \
            v8f d = (xv) - mv;                                                                                        \
            a = a + d * d;                                                                                            \
        } else {                                                                                                      \
            a = a + (xv);                                                                                             \
            b = b + (xv) * (xv);                                                                                      \
        }                                                                                                             \
    }

typedef double d4 __attribute__((vector_size(32)));

// With `exact`: each lane's Σd and Σd² in Float64, d = x − the lane's shift, in no particular order (four lanes for
// the low half of a step's eight sets, four for the high half).
#define EXACT_STEP(xv)                                                                                                \
    if (exact) {                                                                                                      \
        d4 lo_ = __builtin_convertvector(__builtin_shufflevector((xv), (xv), 0, 1, 2, 3), d4) - shift_lo;            \
        d4 hi_ = __builtin_convertvector(__builtin_shufflevector((xv), (xv), 4, 5, 6, 7), d4) - shift_hi;            \
        sum_lo += lo_;                                                                                                \
        sum_hi += hi_;                                                                                                \
        square_lo += lo_ * lo_;                                                                                       \
        square_hi += hi_ * hi_;                                                                                       \
    }

static inline __attribute__((always_inline)) void
chains8(const int kind, const float *x, const float *dy, const long *offsets, long rows, long count, const float *mean,
        const float *rstd, const float *const *gamma, const long gamma_stride, float a_out[8], float b_out[8],
        float *param_a, float *param_b, const int exact, const double *shift, double *exact_out) {
    v8f a = {0, 0, 0, 0, 0, 0, 0, 0}, b = a, pa = a, pb = a;
    d4 shift_lo = {0, 0, 0, 0}, shift_hi = shift_lo, sum_lo = shift_lo, sum_hi = shift_lo, square_lo = shift_lo,
       square_hi = shift_lo;
    if (exact) memcpy(&shift_lo, shift, sizeof shift_lo), memcpy(&shift_hi, shift + 4, sizeof shift_hi);
    for (long r = 0; r < rows; r++) {
        const long *o = offsets + 8 * r;
        const float *const *gp = kind == 0 || kind == 5 ? gamma + 8 * r : 0;
        const v8f mv = load8(mean + 8 * r), rv = load8(rstd + 8 * r);
        if (kind == 5) pa = load8(param_a + 8 * r), pb = load8(param_b + 8 * r);
        v8f row_gamma = {1, 1, 1, 1, 1, 1, 1, 1};
        if ((kind == 0 || kind == 5) && gamma_stride == 0)
            for (int k = 0; k < 8; k++) row_gamma[k] = gp[k][0];
        long s = 0;
        for (; s + 8 <= count; s += 8) {
            v8f in[8], xt[8], dt[8] = {0}, gt[8];
            for (int k = 0; k < 8; k++) in[k] = load8(x + o[k] + s);
            transpose8(in, xt);
            if (kind <= 1 || kind == 5) {
                for (int k = 0; k < 8; k++) in[k] = load8(dy + o[k] + s);
                transpose8(in, dt);
            }
            if (kind == 0 && gamma_stride == 1) {
                for (int k = 0; k < 8; k++) in[k] = load8(gp[k] + s);
                transpose8(in, gt);
            }
            for (int j = 0; j < 8; j++) CHAIN_STEP(xt[j], dt[j], (kind == 0 && gamma_stride == 1) ? gt[j] : row_gamma)
            for (int j = 0; j < 8; j++) EXACT_STEP(xt[j])
        }
        for (; s < count; s++) {
            v8f xv, dv = {0, 0, 0, 0, 0, 0, 0, 0}, gv = row_gamma;
            for (int k = 0; k < 8; k++) {
                xv[k] = x[o[k] + s];
                if (kind <= 1 || kind == 5) dv[k] = dy[o[k] + s];
                if (kind == 0 && gamma_stride == 1) gv[k] = gp[k][s];
            }
            CHAIN_STEP(xv, dv, gv)
            EXACT_STEP(xv)
        }
        if (kind == 5) {
            memcpy(param_a + 8 * r, &pa, sizeof pa);
            memcpy(param_b + 8 * r, &pb, sizeof pb);
        }
    }
    memcpy(a_out, &a, sizeof a);
    memcpy(b_out, &b, sizeof b);
    if (exact) {
        memcpy(exact_out, &sum_lo, sizeof sum_lo);
        memcpy(exact_out + 4, &sum_hi, sizeof sum_hi);
        memcpy(exact_out + 8, &square_lo, sizeof square_lo);
        memcpy(exact_out + 12, &square_hi, sizeof square_hi);
    }
}

NORMLAB_CLONES
void normlab_emulated_chains8_f32(int kind, const float *x, const float *dy, const long *offsets, long rows,
                                  long count, const float *mean, const float *rstd, const float *const *gamma,
                                  long gamma_stride, float a[8], float b[8]) {
    switch (kind) {
    case 0:
        if (gamma_stride == 0) chains8(0, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, 0, 0, 0, 0, 0);
        else chains8(0, x, dy, offsets, rows, count, mean, rstd, gamma, 1, a, b, 0, 0, 0, 0, 0);
        break;
    case 1: chains8(1, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, 0, 0, 0, 0, 0); break;
    case 2: chains8(2, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, 0, 0, 0, 0, 0); break;
    case 3: chains8(3, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, 0, 0, 0, 0, 0); break;
    case 6: chains8(6, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, 0, 0, 0, 0, 0); break;
    default: chains8(4, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, 0, 0, 0, 0, 0); break;
    }
}

NORMLAB_CLONES
void normlab_emulated_fused_sums8_f32(const float *x, const float *dy, const long *offsets, long rows, long count,
                                      const float *mean, const float *rstd, const float *const *gamma, float a[8],
                                      float b[8], float *parameter_a, float *parameter_b) {
    chains8(5, x, dy, offsets, rows, count, mean, rstd, gamma, 0, a, b, parameter_a, parameter_b, 0, 0, 0);
}

NORMLAB_CLONES
void normlab_emulated_chains8_exact_f32(int kind, const float *x, const long *offsets, long rows, long count,
                                        const float *mean, float a[8], float b[8], const double shift[8],
                                        double exact[16]) {
    switch (kind) {
    case 2: chains8(2, x, x, offsets, rows, count, mean, mean, 0, 0, a, b, 0, 0, 1, shift, exact); break;
    case 3: chains8(3, x, x, offsets, rows, count, mean, mean, 0, 0, a, b, 0, 0, 1, shift, exact); break;
    default: chains8(4, x, x, offsets, rows, count, mean, mean, 0, 0, a, b, 0, 0, 1, shift, exact); break;
    }
}

// Columns side by side: column s's chains are lane s % 8 of its vector, so a row's elements load as they lie.
NORMLAB_CLONES
void normlab_emulated_column_parameters_f32(const float *x, const float *dy, const long *offsets,
                                            const long *stat_offsets, long rows, long count, const float *mean,
                                            const float *rstd, long stat_stride, float *restrict a,
                                            float *restrict b) {
    for (long s = 0; s < count; s++) a[s] = 0, b[s] = 0;
    for (long r = 0; r < rows; r++) {
        const float *xr = x + offsets[r], *dyr = dy + offsets[r];
        const float *m = mean + stat_offsets[r], *q = rstd + stat_offsets[r];
        if (stat_stride == 0) {
            const float mr = m[0], qr = q[0];
            for (long s = 0; s < count; s++) {
                float h = (xr[s] - mr) * qr;
                a[s] = a[s] + dyr[s] * h;
                b[s] = b[s] + dyr[s];
            }
        } else {
            for (long s = 0; s < count; s++) {
                float h = (xr[s] - m[s]) * q[s];
                a[s] = a[s] + dyr[s] * h;
                b[s] = b[s] + dyr[s];
            }
        }
    }
}
