#ifndef NORMLAB_COLUMN_LANES_F32_H
#define NORMLAB_COLUMN_LANES_F32_H

// What the float32 column kernels share (column_sets_f32.c: blocks of eight columns from registers, and the entry
// points; column_tiles_forward_f32.c and column_tiles_f32.c: the general loops over a tile): vector types, loads and
// stores of eight columns or one, Float64 accumulators, row sums that fold into Float64 every eight rows, and the
// set's constants.
#include "column_sets.h"

#include <string.h>

#include "power_of_two.h"

// Before this header's own functions, not only in the files that include it: the AVX-512F clone brings FMA with it, and
// no loop may contract a multiply and an add into one rounding.
#pragma clang fp contract(off)

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));
// Eight Float64 lanes: one AVX-512 register, two AVX2 ones (the same lane-wise operations either way).
typedef double d8 __attribute__((vector_size(64)));
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef struct { d8 lo, hi; } d16;

void normlab_columns_forward_f32_wide(const normlab_column_sets *sets, const float *x, long width,
                                      normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                      double *variance_out, double *rstd_out, double *sum_squares_out,
                                      long *zero_variances, int *finite);
void normlab_columns_backward_f32_wide(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                       const double *given_mean, const double *given_rstd,
                                       normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
                                       long sums_row_stride, long sums_column_stride);

enum { TILE = NORMLAB_COLUMN_TILE_F32, FOLD = 8 };

// Sixteen columns (16: two registers of eight, whose row sums' chains of additions then run side by side), eight (8)
// or one (1): the float32 vector, loads, stores, broadcasts, masks (a true lane is −1 in a vector,
// 1 alone), and Float64 accumulators that float32 partial sums are added into. (Macros, not functions: a 256-bit
// vector argument has a different ABI with and without AVX.)
#define vec16 v16f
#define load16(p) ({ v16f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store16(p, v) do { v16f n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define splat16(s) ((v16f){0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} + (float)(s))
#define mask16 v16i
#define true16 ((v16i){-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1})
#define all16(m) ({ v16i w_ = (m); all8(__builtin_shufflevector(w_, w_, 0, 1, 2, 3, 4, 5, 6, 7)) &&                    \
                                   all8(__builtin_shufflevector(w_, w_, 8, 9, 10, 11, 12, 13, 14, 15)); })
#define max0_16(v) ({ v16f v_ = (v); (v16f)((v16i)v_ & (v_ >= 0)); })
#define wide16 d16
#define wzero16 ((d16){wzero8, wzero8})
#define widen16(v) ({ v16f u_ = (v); (d16){widen8(__builtin_shufflevector(u_, u_, 0, 1, 2, 3, 4, 5, 6, 7)),              \
                                          widen8(__builtin_shufflevector(u_, u_, 8, 9, 10, 11, 12, 13, 14, 15))}; })
#define wadd16(a, b) ({ d16 c_ = (a), e_ = (b); (d16){wadd8(c_.lo, e_.lo), wadd8(c_.hi, e_.hi)}; })
#define narrow16(a) ({ d16 m_ = (a); v8f l_ = narrow8(m_.lo), h_ = narrow8(m_.hi);                                  \
                       __builtin_shufflevector(l_, h_, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); })
#define wstore16(p, a) do { d16 t_ = (a); wstore8((p), t_.lo); wstore8((p) + 8, t_.hi); } while (0)
// Thirty-two columns (four registers), for the general loops' x̂ and y with γ and β per row.
typedef float v32f __attribute__((vector_size(128)));
typedef struct { d16 lo, hi; } d32;
#define vec32 v32f
#define load32(p) ({ v32f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store32(p, v) do { v32f n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define splat32(s) ((v32f){0} + (float)(s))
#define widen32(v) ({ v32f z_ = (v);                                                                                  \
    (d32){widen16(__builtin_shufflevector(z_, z_, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),              \
          widen16(__builtin_shufflevector(z_, z_, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31))}; })
#define wstore32(p, a) do { d32 u_ = (a); wstore16((p), u_.lo); wstore16((p) + 16, u_.hi); } while (0)
#define vec8 v8f
#define vec1 float
#define load8(p) ({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store8(p, v) do { v8f n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define load1(p) (*(p))
#define store1(p, v) (*(p) = (v))
#define splat8(s) ((v8f){0, 0, 0, 0, 0, 0, 0, 0} + (float)(s))
#define splat1(s) ((float)(s))
#define mask8 v8i
#define mask1 int
#define true8 ((v8i){-1, -1, -1, -1, -1, -1, -1, -1})
#define true1 1
#define all8(m) ({ v8i m_ = (m); m_[0] && m_[1] && m_[2] && m_[3] && m_[4] && m_[5] && m_[6] && m_[7]; })
#define all1(m) (m)
#define max0_8(v) ({ v8f v_ = (v); (v8f)((v8i)v_ & (v_ >= 0)); })
#define max0_1(v) ({ float v_ = (v); v_ >= 0 ? v_ : 0.0f; })
#define wide8 d8
#define wide1 double
#define wzero8 ((d8){0, 0, 0, 0, 0, 0, 0, 0})
#define wzero1 0.0
#define widen8(v) ({ v8f w_ = (v); __builtin_convertvector(w_, d8); })
#define widen1(v) ((double)(v))
#define wadd8(a, b) ({ d8 a_ = (a), b_ = (b); a_ + b_; })
#define wadd1(a, b) ((a) + (b))
#define wmul8(a, s) ({ d8 a_ = (a); a_ * (s); })
#define wmul1(a, s) ((a) * (s))
#define wdiv8(a, s) ({ d8 a_ = (a); a_ / (s); })
#define wdiv1(a, s) ((a) / (s))
#define narrow8(a) ({ d8 n_ = (a); __builtin_convertvector(n_, v8f); })
#define narrow1(a) ((float)(a))
#define wload8(p) ({ d8 a_; memcpy(&a_, (p), sizeof a_); a_; })
#define wload1(p) (*(p))
#define wstore8(p, a) do { d8 s_ = (a); memcpy((p), &s_, sizeof s_); } while (0)
#define wstore1(p, a) (*(p) = (a))
// Lanes i and i + 4 added: a d8's two halves, as four Float64 lanes.
#define halves8(a) ({ d8 h_ = (a); __builtin_shufflevector(h_, h_, 0, 1, 2, 3) +                                        \
                                   __builtin_shufflevector(h_, h_, 4, 5, 6, 7); })
// Adds float32 values into a Float64 array.
#define accumulate8(p, v) wstore8(p, wadd8(wload8(p), widen8(v)))
#define accumulate1(p, v) (*(p) += (double)(v))

// A power-of-two count divides by multiplying (power_of_two.h).
#define DIVIDE(v, by) (by##_scaled ? (v) * by##_scale : (v) / by##_float)

#define ROW_AT(r) (row_offsets ? row_offsets[r] : (r) * stride)
#define ROW_INDEX(r) (row_index ? row_index[r] : (r))

// What a caller knows at compile time about a call (a mask of these), so the common layouts get loops without the
// tests that the flags stand for: rows at multiples of the stride (no table of offsets or index), sets centred, and
// for forward's blocks only y with γ and β per element (PyDLLib's GroupNorm and BatchNorm), for backward's γ per element;
// and with those, γ and β the same for every row (BatchNorm per element: they are a sample's elements), and m and the
// divisor powers of two (PyDLLib's eight samples: DIVIDE multiplies, without the test).
enum { KNOWN_PLAIN_ROWS = 1, KNOWN_ELEMENT_AFFINE = 2, KNOWN_CENTRED = 4, KNOWN_SHARED_AFFINE = 8, KNOWN_POWERS_OF_TWO = 16 };
#define KNOWN_COMMON (KNOWN_PLAIN_ROWS | KNOWN_ELEMENT_AFFINE | KNOWN_CENTRED)

#define CONSTANTS                                                                                                     \
    const long rows = fixed_rows, stride = sets->row_stride;                                                          \
    const long *row_offsets = (known & KNOWN_PLAIN_ROWS) ? 0 : sets->row_offsets;                                     \
    const long *row_index = (known & KNOWN_PLAIN_ROWS) ? 0 : sets->row_index;                                        \
    const int centre = (known & KNOWN_CENTRED) ? 1 : sets->centre;                                                    \
    const float m_float = (float)sets->m, divisor_float = (float)sets->divisor, eps = (float)sets->eps;               \
    const int m_scaled = (known & KNOWN_POWERS_OF_TWO) || normlab_power_of_two(sets->m);                            \
    const int divisor_scaled = (known & KNOWN_POWERS_OF_TWO) || normlab_power_of_two(sets->divisor);                \
    const float m_scale = 1.0f / m_float, divisor_scale = 1.0f / divisor_float;                                       \
    const float single_rstd = 1.0f / __builtin_sqrtf(0.0f + eps); /* rstd of a set of one element in range */         \
    (void)row_index; (void)eps; (void)single_rstd;

// Sets of two rows a, b (PyDLLib's GroupNorm per position): μ₀ = a, so the corrected two-pass form comes to
// d = (0, b − a), μ − μ₀ = δ = (b − a)/2 and Σ(x − μ)² = 2δ² (its general terms (b − a)² − (b − a)·δ are 4δ², 2δ²
// rounded alike, so the same bits) at a third of the general steps' cost; x̂ = d·rstd − δ·rstd as for any set, and no
// separate test that μ and δ are finite: a non-finite a or b makes σ² + eps NaN or infinite, out of range.
#define PAIR_STATISTICS(W, a, b, d0, d1)                                                                              \
    mean = (a);                                                                                                       \
    d0 = (a) - (a);                                                                                                   \
    d1 = (b) - (a);                                                                                                   \
    deviations = d1;                                                                                                  \
    offset = DIVIDE(deviations, m);                                                                                   \
    squares = (offset * offset) * 2.0f;

// total = Σ TERM over rows first…: in float32 for up to eight terms, else eight at a time added in Float64. Up to
// sixteen terms that is two float32 sums added once, and a sum of two float32 numbers made in Float64 and rounded to
// float32 is the float32 sum (one rounding of the exact sum: Float64 carries more than twice float32's digits, so
// its rounding is innocuous), so those add in float32 — the same bits, without the widening and narrowing.
#define ROWS_SUM(W, total, first, TERM)                                                                               \
    if (rows - (first) <= FOLD) {                                                                                     \
        total = splat##W(0);                                                                                          \
        for (long r = (first); r < rows; r++) total += (TERM);                                                        \
    } else if (rows - (first) <= 2 * FOLD) {                                                                          \
        vec##W low_ = splat##W(0), high_ = splat##W(0);                                                               \
        for (long r = (first); r < (first) + FOLD; r++) low_ += (TERM);                                               \
        for (long r = (first) + FOLD; r < rows; r++) high_ += (TERM);                                                 \
        total = low_ + high_;                                                                                         \
    } else {                                                                                                          \
        wide##W sum_ = wzero##W;                                                                                      \
        vec##W part_ = splat##W(0);                                                                                   \
        for (long r = (first), n_ = 1; r < rows; r++, n_++) {                                                         \
            part_ += (TERM);                                                                                          \
            if (n_ % FOLD == 0) { sum_ = wadd##W(sum_, widen##W(part_)); part_ = splat##W(0); }                       \
        }                                                                                                             \
        total = narrow##W(wadd##W(sum_, widen##W(part_)));                                                            \
    }

// The same for two sums of one row loop whose body declares what TERM_A and TERM_B read.
#define ROWS_SUM2(W, total_a, total_b, BODY, TERM_A, TERM_B)                                                          \
    if (rows <= FOLD) {                                                                                               \
        total_a = splat##W(0); total_b = splat##W(0);                                                                 \
        for (long r = 0; r < rows; r++) { BODY total_a += (TERM_A); total_b += (TERM_B); }                            \
    } else if (rows <= 2 * FOLD) {                                                                                    \
        vec##W low_a_ = splat##W(0), low_b_ = splat##W(0), high_a_ = splat##W(0), high_b_ = splat##W(0);              \
        for (long r = 0; r < FOLD; r++) { BODY low_a_ += (TERM_A); low_b_ += (TERM_B); }                              \
        for (long r = FOLD; r < rows; r++) { BODY high_a_ += (TERM_A); high_b_ += (TERM_B); }                         \
        total_a = low_a_ + high_a_; total_b = low_b_ + high_b_;                                                       \
    } else {                                                                                                          \
        wide##W sum_a_ = wzero##W, sum_b_ = wzero##W;                                                                 \
        vec##W part_a_ = splat##W(0), part_b_ = splat##W(0);                                                          \
        for (long r = 0; r < rows; r++) {                                                                             \
            BODY                                                                                                      \
            part_a_ += (TERM_A); part_b_ += (TERM_B);                                                                 \
            if ((r + 1) % FOLD == 0) {                                                                                \
                sum_a_ = wadd##W(sum_a_, widen##W(part_a_)); sum_b_ = wadd##W(sum_b_, widen##W(part_b_));             \
                part_a_ = splat##W(0); part_b_ = splat##W(0);                                                         \
            }                                                                                                         \
        }                                                                                                             \
        total_a = narrow##W(wadd##W(sum_a_, widen##W(part_a_)));                                                      \
        total_b = narrow##W(wadd##W(sum_b_, widen##W(part_b_)));                                                      \
    }


// The same for four sums (backward's statistics pass: Σd, Σd² and Σdx̂, Σdx̂·d).
#define ROWS_SUM4(W, total_a, total_b, total_c, total_d, BODY, TERM_A, TERM_B, TERM_C, TERM_D)                          \
    if (rows <= FOLD) {                                                                                               \
        total_a = splat##W(0); total_b = splat##W(0); total_c = splat##W(0); total_d = splat##W(0);                   \
        for (long r = 0; r < rows; r++) {                                                                             \
            BODY total_a += (TERM_A); total_b += (TERM_B); total_c += (TERM_C); total_d += (TERM_D);                  \
        }                                                                                                             \
    } else if (rows <= 2 * FOLD) {                                                                                    \
        vec##W low_a_ = splat##W(0), low_b_ = splat##W(0), low_c_ = splat##W(0), low_d_ = splat##W(0);                \
        vec##W high_a_ = splat##W(0), high_b_ = splat##W(0), high_c_ = splat##W(0), high_d_ = splat##W(0);            \
        for (long r = 0; r < FOLD; r++) {                                                                             \
            BODY low_a_ += (TERM_A); low_b_ += (TERM_B); low_c_ += (TERM_C); low_d_ += (TERM_D);                      \
        }                                                                                                             \
        for (long r = FOLD; r < rows; r++) {                                                                          \
            BODY high_a_ += (TERM_A); high_b_ += (TERM_B); high_c_ += (TERM_C); high_d_ += (TERM_D);                  \
        }                                                                                                             \
        total_a = low_a_ + high_a_; total_b = low_b_ + high_b_;                                                       \
        total_c = low_c_ + high_c_; total_d = low_d_ + high_d_;                                                       \
    } else {                                                                                                          \
        wide##W sum_a_ = wzero##W, sum_b_ = wzero##W, sum_c_ = wzero##W, sum_d_ = wzero##W;                           \
        vec##W part_a_ = splat##W(0), part_b_ = splat##W(0), part_c_ = splat##W(0), part_d_ = splat##W(0);            \
        for (long r = 0; r < rows; r++) {                                                                             \
            BODY                                                                                                      \
            part_a_ += (TERM_A); part_b_ += (TERM_B); part_c_ += (TERM_C); part_d_ += (TERM_D);                       \
            if ((r + 1) % FOLD == 0) {                                                                                \
                sum_a_ = wadd##W(sum_a_, widen##W(part_a_)); sum_b_ = wadd##W(sum_b_, widen##W(part_b_));             \
                sum_c_ = wadd##W(sum_c_, widen##W(part_c_)); sum_d_ = wadd##W(sum_d_, widen##W(part_d_));             \
                part_a_ = splat##W(0); part_b_ = splat##W(0); part_c_ = splat##W(0); part_d_ = splat##W(0);           \
            }                                                                                                         \
        }                                                                                                             \
        total_a = narrow##W(wadd##W(sum_a_, widen##W(part_a_)));                                                      \
        total_b = narrow##W(wadd##W(sum_b_, widen##W(part_b_)));                                                      \
        total_c = narrow##W(wadd##W(sum_c_, widen##W(part_c_)));                                                      \
        total_d = narrow##W(wadd##W(sum_d_, widen##W(part_d_)));                                                      \
    }

// A block's column sums (dγ's or dβ's, whole: a block holds every row of its columns) narrowed to float32 as
// normlab_narrow_sums narrows 0 + the sum in Float64 (the sum, exactly: a float32 sum started from +0 is never −0);
// scaling as normlab_narrowed_sums's (a constant where the caller knows it).
#define NARROWED_SUMS_STORE(W, p, column_sum, scaling)                                                                \
    {                                                                                                                 \
        wide##W v_ = widen##W(column_sum);                                                                            \
        if ((scaling) == 1) v_ = wmul##W(v_, narrowed_sums->factor);                                                  \
        else if ((scaling) != 0) v_ = wdiv##W(v_, narrowed_sums->factor);                                             \
        store##W(p, narrow##W(v_));                                                                                   \
    }

// The narrowed statistics from column j on (a tile's or block's own view of them).
static inline normlab_narrowed_statistics narrowed_from(const normlab_narrowed_statistics *n, long j) {
    return (normlab_narrowed_statistics){n->mean + j, n->variance + j, n->rstd + j, n->unbiased + j,
                                         n->unbiased_divisor, n->first_mean ? n->first_mean + j : 0,
                                         n->shift ? n->shift + j : 0};
}

// Columns j ..< j + count that ran in the Float64 lanes: their statistics narrowed from the Float64 scratch, as the
// caller would have narrowed them.
static inline void narrow_from_wide(const normlab_narrowed_statistics *n, long j, const double *mean,
                                    const double *variance, const double *rstd, const double *sum_squares,
                                    long count) {
    for (long i = j; i < j + count; i++) {
        n->mean[i] = (float)mean[i];
        n->variance[i] = (float)variance[i];
        n->rstd[i] = (float)rstd[i];
        n->unbiased[i] = (float)(sum_squares[i] / n->unbiased_divisor);
    }
    // Their μ₀ and c are not kept: a backward makes their statistics again.
    if (n->shift)
        for (long i = j; i < j + count; i++) n->first_mean[i] = n->shift[i] = __builtin_nanf("");
}

// The float32 μ, σ² and unbiased σ² of the W columns at j, from the lanes' values (μ = μ₀ + (μ − μ₀)).
#define NARROWED_MOMENTS(W, n, mean, offset, variance, squares)                                                       \
    {                                                                                                                 \
        store##W((n)->mean + j, (mean) + (offset));                                                                   \
        store##W((n)->variance + j, variance);                                                                        \
        store##W((n)->unbiased + j, (squares) / splat##W((float)(n)->unbiased_divisor));                              \
    }

// The general loops, a tile of up to TILE columns at a time, for any number of rows (column_tiles_forward_f32.c,
// column_tiles_f32.c).
void normlab_columns_f32_forward_tiles(const normlab_column_sets *sets, const float *x, long width,
                                       normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                       double *variance_out, double *rstd_out, double *sum_squares_out,
                                       long *zero_variances, int *finite,
                                       const normlab_narrowed_statistics *narrowed);
void normlab_columns_f32_backward_tiles(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                        const double *given_mean, const double *given_rstd,
                                        normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
                                        long sums_row_stride, long sums_column_stride);

#endif
