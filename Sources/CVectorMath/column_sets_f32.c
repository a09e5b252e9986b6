#include "column_sets.h"

#include <string.h>

// Column sets of float32 elements in float32 lanes: eight columns per 256-bit register, as the row kernels run float32
// rows (FastKernels, Lanes.swift), rather than four in Float64 (column_sets.c). PyDLLib's GroupNorm sets hold two
// elements, so the work per set — its statistics, one square root and one division — outweighs the work per element:
// in Float64 lanes it cost a pass 4–8× GroupNorm G = 32's time (session 7: ~1 ms of Float64 1/√ alone per pass).
//
// The arithmetic, per column of m rows, rows summed in row order (more than eight rows: eight at a time in float32,
// those partial sums added in Float64):
//   μ₀ = x₀ + Σ(x − x₀)/m                     a first mean; a constant column gets x₀ exactly
//   d = x − μ₀;  Σd, Σd²                       differences of rows near the mean are exact (Sterbenz)
//   μ − μ₀ = Σd/m,  Σ(x − μ)² = Σd² − Σd·(Σd/m)   the corrected two-pass form
//   rstd = 1/√(σ² + eps)                       float32 square root and division
//   x̂ = (x − μ₀)·rstd + c,  c = −(Σd/m)·rstd   μ's remainder folded into one constant per set
// so 1e6 + noise keeps its fraction. Backward makes the statistics again from x with the same code (it reads no
// given statistics), so x̂ has the same bits in forward, backward and `xhat`. A tile whose numbers leave float32's
// comfortable range (a non-finite value, σ² + eps outside [2⁻¹²⁰, 2¹²⁰], backward's terms beyond 2¹⁰⁰) runs in
// Float64 lanes instead (column_sets.c's kernels). Every operation is IEEE float or double, lane-wise, never
// contracted: a column gets the same bits in a lane or alone, on any CPU, for any tile split or thread count.
#pragma clang fp contract(off)

#include "clones.h"

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef int v8i __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));
typedef struct { v4d lo, hi; } d8;

void normlab_columns_forward_f32_wide(const normlab_column_sets *sets, const float *x, long width,
                                      normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                      double *variance_out, double *rstd_out, double *sum_squares_out,
                                      long *zero_variances, int *finite);
void normlab_columns_backward_f32_wide(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                       const double *given_mean, const double *given_rstd,
                                       normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
                                       long sums_row_stride, long sums_column_stride);

enum { TILE = NORMLAB_COLUMN_TILE, FOLD = 8 };

// Eight columns (8) or one (1): the float32 vector, loads, stores, broadcasts, masks (a true lane is −1 in a vector,
// 1 alone), and Float64 accumulators that float32 partial sums are added into. (Macros, not functions: a 256-bit
// vector argument has a different ABI with and without AVX.)
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
#define wzero8 ((d8){{0, 0, 0, 0}, {0, 0, 0, 0}})
#define wzero1 0.0
#define widen8(v) ({ v8f w_ = (v); (d8){__builtin_convertvector(__builtin_shufflevector(w_, w_, 0, 1, 2, 3), v4d),      \
                                       __builtin_convertvector(__builtin_shufflevector(w_, w_, 4, 5, 6, 7), v4d)}; })
#define widen1(v) ((double)(v))
#define wadd8(a, b) ({ d8 a_ = (a), b_ = (b); (d8){a_.lo + b_.lo, a_.hi + b_.hi}; })
#define wadd1(a, b) ((a) + (b))
#define narrow8(a) ({ d8 n_ = (a); __builtin_shufflevector(__builtin_convertvector(n_.lo, v4f),                        \
                                                            __builtin_convertvector(n_.hi, v4f), 0, 1, 2, 3, 4, 5, 6, 7); })
#define narrow1(a) ((float)(a))
#define wload8(p) ({ d8 a_; memcpy(&a_.lo, (p), 32); memcpy(&a_.hi, (p) + 4, 32); a_; })
#define wload1(p) (*(p))
#define wstore8(p, a) do { d8 s_ = (a); memcpy((p), &s_.lo, 32); memcpy((p) + 4, &s_.hi, 32); } while (0)
#define wstore1(p, a) (*(p) = (a))
// Adds float32 values into a Float64 array.
#define accumulate8(p, v) wstore8(p, wadd8(wload8(p), widen8(v)))
#define accumulate1(p, v) (*(p) += (double)(v))

// v/2^k and v·2^−k are one rounding of the same real number, so a power-of-two count divides by multiplying.
#define DIVIDE(v, by) (by##_scaled ? (v) * by##_scale : (v) / by##_float)

static inline int power_of_two(double v) {
    if (!(v > 0) || v > 0x1p60) return 0;
    while (v >= 2) v /= 2;
    while (v < 1) v *= 2;
    return v == 1;
}

#define ROW_AT(r) (row_offsets ? row_offsets[r] : (r) * stride)
#define ROW_INDEX(r) (row_index ? row_index[r] : (r))

#define CONSTANTS                                                                                                     \
    const long rows = fixed_rows, stride = sets->row_stride;                                                          \
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;                                        \
    const int centre = sets->centre;                                                                                  \
    const float m_float = (float)sets->m, divisor_float = (float)sets->divisor, eps = (float)sets->eps;               \
    const int m_scaled = power_of_two(sets->m), divisor_scaled = power_of_two(sets->divisor);                         \
    const float m_scale = 1.0f / m_float, divisor_scale = 1.0f / divisor_float;                                       \
    (void)row_index; (void)eps;

// total = Σ TERM over rows first…: in float32 for up to eight terms, else eight at a time added in Float64.
#define ROWS_SUM(W, total, first, TERM)                                                                               \
    if (rows - (first) <= FOLD) {                                                                                     \
        total = splat##W(0);                                                                                          \
        for (long r = (first); r < rows; r++) total += (TERM);                                                        \
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

// μ₀, rstd and c of a tile's columns, as x̂ is made from them.
typedef struct {
    float mean[TILE], rstd[TILE], shift[TILE];
} tile_constants;

// The statistics of the columns at j into c (and, where asked, μ, σ², rstd, Σ(x − μ)² in Float64); clears ok's lanes
// for numbers out of range, counts zero variances.
#define STATISTICS_STEP(W)                                                                                            \
    {                                                                                                                 \
        vec##W first = load##W(x + ROW_AT(0) + j), mean = splat##W(0), sum, deviations, squares;                      \
        if (centre) {                                                                                                 \
            ROWS_SUM(W, sum, 1, load##W(x + ROW_AT(r) + j) - first)                                                   \
            mean = first + DIVIDE(sum, m);                                                                            \
        }                                                                                                             \
        ROWS_SUM2(W, deviations, squares, vec##W d = load##W(x + ROW_AT(r) + j) - mean;, d, d * d)                    \
        vec##W offset = centre ? DIVIDE(deviations, m) : splat##W(0);                                                 \
        if (centre) squares = max0_##W(squares - deviations * offset);                                                \
        vec##W variance = DIVIDE(squares, divisor), shifted = variance + eps;                                         \
        ok##W &= (shifted >= 0x1p-120f) & (shifted <= 0x1p120f) & (mean - mean == 0) & (offset - offset == 0);        \
        zeros##W -= variance == 0;                                                                                    \
        store##W(c.mean + j, mean);                                                                                   \
        store##W(c.rstd + j, shifted);                                                                                \
        store##W(c.shift + j, offset);                                                                                \
        if (mean_out) wstore##W(mean_out + j, wadd##W(widen##W(mean), widen##W(offset)));                             \
        if (variance_out) wstore##W(variance_out + j, widen##W(variance));                                            \
        if (sum_squares_out) wstore##W(sum_squares_out + j, widen##W(squares));                                       \
    }

// A tile's statistics; 0 when a column's numbers are out of range (the tile then runs in Float64 lanes).
// One square root and division per column, run back to back for the whole tile so they pipeline (fused into the
// step above, each waited for the last: a third of forward's time).
#define RSTD_STEP(W)                                                                                                  \
    {                                                                                                                 \
        vec##W rstd = 1.0f / __builtin_elementwise_sqrt(load##W(c.rstd + j));                                         \
        store##W(c.rstd + j, rstd);                                                                                   \
        store##W(c.shift + j, -load##W(c.shift + j) * rstd);                                                          \
        if (rstd_out) wstore##W(rstd_out + j, widen##W(rstd));                                                        \
    }

#define TILE_STATISTICS(ok, zeros)                                                                                    \
    {                                                                                                                 \
        mask8 ok8 = true8, zeros8 = {0, 0, 0, 0, 0, 0, 0, 0};                                                         \
        mask1 ok1 = true1, zeros1 = 0;                                                                                \
        long j = 0;                                                                                                   \
        for (; j + 8 <= part; j += 8) STATISTICS_STEP(8)                                                              \
        for (; j < part; j++) STATISTICS_STEP(1)                                                                      \
        ok = all8(ok8) && all1(ok1);                                                                                  \
        zeros = (long)(((zeros8[0] + zeros8[1]) + (zeros8[2] + zeros8[3])) + ((zeros8[4] + zeros8[5]) + (zeros8[6] + zeros8[7]))) - zeros1; \
        if (ok) {                                                                                                     \
            for (j = 0; j + 8 <= part; j += 8) RSTD_STEP(8)                                                           \
            for (; j < part; j++) RSTD_STEP(1)                                                                        \
        }                                                                                                             \
    }

#define NORMALISE_STEP(W)                                                                                             \
    {                                                                                                                 \
        vec##W mean = load##W(c->mean + j), rstd = load##W(c->rstd + j), shift = load##W(c->shift + j);               \
        for (long r = 0; r < rows; r++) {                                                                             \
            const long at = ROW_AT(r) + j;                                                                            \
            vec##W h = (load##W(x + at) - mean) * rstd + shift;                                                       \
            if (has_xhat) store##W(xhat + at, h);                                                                     \
            if (!has_y) continue;                                                                                     \
            if (!has_gamma) {                                                                                         \
                store##W(y + at, h);                                                                                  \
            } else {                                                                                                  \
                const long p = ROW_INDEX(r) * affine.row_stride + j * per_element;                                    \
                vec##W g = per_element ? load##W(gamma + p) : splat##W(gamma[p]);                                     \
                vec##W b = !has_beta ? splat##W(0) : per_element ? load##W(beta + p) : splat##W(beta[p]);             \
                store##W(y + at, g * h + b);                                                                          \
            }                                                                                                         \
        }                                                                                                             \
    }

// x̂ and y of a tile; called with constant flags for the common cases, so each gets loops without their tests.
static inline __attribute__((always_inline)) void
normalise_tile(const normlab_column_sets *sets, const tile_constants *c, const float *x, long part,
               normlab_column_affine affine, float *xhat, float *y, const int has_xhat, const int has_y,
               const int has_gamma, const int has_beta, const long per_element, const long rows) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma, *beta = affine.beta;
    long j = 0;
    for (; j + 8 <= part; j += 8) NORMALISE_STEP(8)
    for (; j < part; j++) NORMALISE_STEP(1)
}

static inline __attribute__((always_inline)) void
forward_tiles(const normlab_column_sets *sets, const float *all_x, long width, normlab_column_affine all_affine,
              float *all_xhat, float *all_y, double *all_mean, double *all_variance, double *all_rstd,
              double *all_sum_squares, long *zero_variances, int *finite, const long fixed_rows) {
    CONSTANTS
    for (long first = 0; first < width; first += TILE) {
        const long part = width - first < TILE ? width - first : TILE;
        normlab_column_affine affine = all_affine;
        if (affine.gamma) affine.gamma = (const float *)affine.gamma + first * affine.column_stride;
        if (affine.beta) affine.beta = (const float *)affine.beta + first * affine.column_stride;
        const float *x = all_x + first, *gamma = affine.gamma, *beta = affine.beta;
        float *xhat = all_xhat ? all_xhat + first : 0, *y = all_y ? all_y + first : 0;
        double *mean_out = all_mean ? all_mean + first : 0, *variance_out = all_variance ? all_variance + first : 0;
        double *rstd_out = all_rstd ? all_rstd + first : 0;
        double *sum_squares_out = all_sum_squares ? all_sum_squares + first : 0;
        tile_constants c;
        int ok;
        long zeros;
        TILE_STATISTICS(ok, zeros)
        if (!ok) {
            normlab_columns_forward_f32_wide(sets, x, part, affine, xhat, y, mean_out, variance_out, rstd_out,
                                             sum_squares_out, zero_variances, finite);
            continue;
        }
        *zero_variances += zeros;
        const int only_y = !xhat && y, per_element = affine.column_stride == 1;
        if (only_y && gamma && beta && per_element) normalise_tile(sets, &c, x, part, affine, 0, y, 0, 1, 1, 1, 1, rows);
        else if (only_y && gamma && beta) normalise_tile(sets, &c, x, part, affine, 0, y, 0, 1, 1, 1, 0, rows);
        else if (only_y && !gamma) normalise_tile(sets, &c, x, part, affine, 0, y, 0, 1, 0, 0, 0, rows);
        else normalise_tile(sets, &c, x, part, affine, xhat, y, xhat != 0, y != 0, gamma != 0, beta != 0, per_element, rows);
    }
}


// Sets of at most eight rows, eight columns at a time, each block once from memory to registers: its rows are loaded
// once, and statistics, x̂ and y (forward) or the two sums and dx (backward) are made from the registers — the same
// operations in the same order as the loops above, so the same bits. A block whose numbers are out of range runs in
// the Float64 lanes alone (its eight columns); columns past the last whole block take the loops above.
#define BLOCK_STATISTICS                                                                                              \
    v8f v[8], d[8];                                                                                                   \
    for (long r = 0; r < rows; r++) v[r] = load8(x + ROW_AT(r) + j);                                                  \
    v8f mean = splat8(0), deviations = splat8(0), squares = splat8(0);                                                \
    if (centre) {                                                                                                     \
        v8f sum = splat8(0);                                                                                          \
        for (long r = 1; r < rows; r++) sum += v[r] - v[0];                                                           \
        mean = v[0] + DIVIDE(sum, m);                                                                                 \
    }                                                                                                                 \
    for (long r = 0; r < rows; r++) {                                                                                 \
        d[r] = v[r] - mean;                                                                                           \
        deviations += d[r];                                                                                           \
        squares += d[r] * d[r];                                                                                       \
    }                                                                                                                 \
    v8f offset = centre ? DIVIDE(deviations, m) : splat8(0);                                                          \
    if (centre) squares = max0_8(squares - deviations * offset);                                                      \
    v8f variance = DIVIDE(squares, divisor), shifted = variance + eps;                                                \
    v8i ok = (shifted >= 0x1p-120f) & (shifted <= 0x1p120f) & (mean - mean == 0) & (offset - offset == 0);            \
    v8f rstd = 1.0f / __builtin_elementwise_sqrt(shifted), shift = -offset * rstd;

static inline __attribute__((always_inline)) void
forward_blocks(const normlab_column_sets *sets, const float *x, long width, normlab_column_affine affine,
               float *xhat, float *y, double *mean_out, double *variance_out, double *rstd_out,
               double *sum_squares_out, long *zero_variances, int *finite, const long fixed_rows) {
    CONSTANTS
    const float *gamma = affine.gamma, *beta = affine.beta;
    const long per_element = affine.column_stride;
    v8i zeros = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    for (; j + 8 <= width; j += 8) {
        BLOCK_STATISTICS
        if (!all8(ok)) {
            normlab_column_affine shifted_affine = affine;
            if (gamma) shifted_affine.gamma = gamma + j * per_element;
            if (beta) shifted_affine.beta = beta + j * per_element;
            normlab_columns_forward_f32_wide(sets, x + j, 8, shifted_affine, xhat ? xhat + j : 0, y ? y + j : 0,
                mean_out ? mean_out + j : 0, variance_out ? variance_out + j : 0, rstd_out ? rstd_out + j : 0,
                sum_squares_out ? sum_squares_out + j : 0, zero_variances, finite);
            continue;
        }
        zeros -= variance == 0;
        if (mean_out) wstore8(mean_out + j, wadd8(widen8(mean), widen8(offset)));
        if (variance_out) wstore8(variance_out + j, widen8(variance));
        if (rstd_out) wstore8(rstd_out + j, widen8(rstd));
        if (sum_squares_out) wstore8(sum_squares_out + j, widen8(squares));
        for (long r = 0; r < rows; r++) {
            const long at = ROW_AT(r) + j;
            v8f h = d[r] * rstd + shift;
            if (xhat) store8(xhat + at, h);
            if (!y) continue;
            if (!gamma) {
                store8(y + at, h);
            } else {
                const long p = ROW_INDEX(r) * affine.row_stride + j * per_element;
                v8f g = per_element ? load8(gamma + p) : splat8(gamma[p]);
                v8f b = !beta ? splat8(0) : per_element ? load8(beta + p) : splat8(beta[p]);
                store8(y + at, g * h + b);
            }
        }
    }
    *zero_variances += ((zeros[0] + zeros[1]) + (zeros[2] + zeros[3])) + ((zeros[4] + zeros[5]) + (zeros[6] + zeros[7]));
    if (j < width) {
        normlab_column_affine rest = affine;
        if (gamma) rest.gamma = gamma + j * per_element;
        if (beta) rest.beta = beta + j * per_element;
        forward_tiles(sets, x + j, width - j, rest, xhat ? xhat + j : 0, y ? y + j : 0, mean_out ? mean_out + j : 0,
                      variance_out ? variance_out + j : 0, rstd_out ? rstd_out + j : 0,
                      sum_squares_out ? sum_squares_out + j : 0, zero_variances, finite, fixed_rows);
    }
}

static inline __attribute__((always_inline)) void
forward_any(const normlab_column_sets *sets, const float *x, long width, normlab_column_affine affine, float *xhat,
            float *y, double *mean_out, double *variance_out, double *rstd_out, double *sum_squares_out,
            long *zero_variances, int *finite, const long fixed_rows) {
    if (fixed_rows <= 8) forward_blocks(sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out,
                                        sum_squares_out, zero_variances, finite, fixed_rows);
    else forward_tiles(sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
                       zero_variances, finite, fixed_rows);
}

// A few small set sizes get loops of a known length (unrolled, no per-row tests); others the general loops.
#define BY_ROWS(call, ...)                                                                                            \
    switch (sets->rows) {                                                                                             \
    case 2: call(__VA_ARGS__, 2); break;                                                                              \
    case 4: call(__VA_ARGS__, 4); break;                                                                              \
    case 8: call(__VA_ARGS__, 8); break;                                                                              \
    default: call(__VA_ARGS__, sets->rows); break;                                                                    \
    }

NORMLAB_CLONES
void normlab_columns_forward_f32(const normlab_column_sets *sets, const float *x, long width,
                                 normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                 double *variance_out, double *rstd_out, double *sum_squares_out,
                                 long *zero_variances, int *finite) {
    BY_ROWS(forward_any, sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
            zero_variances, finite)
}

// Row r of the columns at j in backward: its offset `at`, dy, x̂ and dx̂ = dy·γ.
#define BACKWARD_ROW(W)                                                                                               \
    const long at = ROW_AT(r) + j;                                                                                    \
    vec##W d = load##W(dy + at), h = (load##W(x + at) - mean) * rstd + shift, dh = d;                                 \
    if (gamma) {                                                                                                      \
        const long p = ROW_INDEX(r) * affine.row_stride + j * affine.column_stride;                                   \
        dh = d * (affine.column_stride ? load##W(gamma + p) : splat##W(gamma[p]));                                   \
    }

#define CONSTANTS_AT(W)                                                                                               \
    vec##W mean = load##W(c.mean + j), rstd = load##W(c.rstd + j), shift = load##W(c.shift + j);

// Σdx̂/m and Σ(dx̂·x̂)/divisor per column.
#define PROJECTION_STEP(W)                                                                                            \
    {                                                                                                                 \
        CONSTANTS_AT(W)                                                                                               \
        vec##W sum, sum_products;                                                                                     \
        ROWS_SUM2(W, sum, sum_products, BACKWARD_ROW(W), dh, dh * h)                                                  \
        vec##W mean_term = centre ? DIVIDE(sum, m) : splat##W(0), projection = DIVIDE(sum_products, divisor);         \
        ok##W &= (mean_term > -0x1p100f) & (mean_term < 0x1p100f) & (projection > -0x1p100f) & (projection < 0x1p100f); \
        store##W(mean_terms + j, mean_term);                                                                          \
        store##W(projections + j, projection);                                                                        \
    }

// dx = rstd·((dx̂ − Σdx̂/m) − x̂·Σ(dx̂·x̂)/divisor); dy and dy·x̂ added into per-element sums for γ and β.
#define GRADIENT_STEP(W)                                                                                              \
    {                                                                                                                 \
        CONSTANTS_AT(W)                                                                                               \
        vec##W mean_term = load##W(mean_terms + j), projection = load##W(projections + j);                            \
        for (long r = 0; r < rows; r++) {                                                                             \
            BACKWARD_ROW(W)                                                                                           \
            store##W(dx + at, rstd * ((dh - mean_term) - h * projection));                                            \
            if (element_sums) {                                                                                       \
                const long s = ROW_INDEX(r) * sums_row_stride + j;                                                    \
                accumulate##W(sum_dy + s, d);                                                                         \
                accumulate##W(sum_dy_xhat + s, d * h);                                                                \
            }                                                                                                         \
        }                                                                                                             \
    }

// One sum per row over the tile's columns: eight lanes, eight blocks of columns at a time in float32, into Float64.
#define ROW_SUMS_STEP(W)                                                                                              \
    {                                                                                                                 \
        CONSTANTS_AT(W)                                                                                               \
        BACKWARD_ROW(W)                                                                                               \
        (void)dh;                                                                                                     \
        part_d##W += d;                                                                                               \
        part_dh##W += d * h;                                                                                          \
        if (++count##W % FOLD == 0) {                                                                                 \
            sum_d##W = wadd##W(sum_d##W, widen##W(part_d##W)); sum_dh##W = wadd##W(sum_dh##W, widen##W(part_dh##W));  \
            part_d##W = splat##W(0); part_dh##W = splat##W(0);                                                        \
        }                                                                                                             \
    }

static inline __attribute__((always_inline)) void
backward_tiles(const normlab_column_sets *sets, const float *all_x, const float *all_dy, long width,
               const double *given_mean, const double *given_rstd, normlab_column_affine all_affine, float *all_dx,
               double *all_sum_dy, double *all_sum_dy_xhat, long sums_row_stride, long sums_column_stride,
               const long fixed_rows) {
    CONSTANTS
    const int element_sums = all_sum_dy && sums_column_stride == 1;
    double *const mean_out = 0, *const variance_out = 0, *const rstd_out = 0, *const sum_squares_out = 0;
    for (long first = 0; first < width; first += TILE) {
        const long part = width - first < TILE ? width - first : TILE;
        normlab_column_affine affine = all_affine;
        if (affine.gamma) affine.gamma = (const float *)affine.gamma + first * affine.column_stride;
        const float *x = all_x + first, *dy = all_dy + first, *gamma = affine.gamma;
        float *dx = all_dx + first;
        double *sum_dy = all_sum_dy ? all_sum_dy + first * sums_column_stride : 0;
        double *sum_dy_xhat = all_sum_dy_xhat ? all_sum_dy_xhat + first * sums_column_stride : 0;
        tile_constants c;
        float mean_terms[TILE], projections[TILE];
        int ok;
        long zeros;
        TILE_STATISTICS(ok, zeros)
        if (ok) {
            mask8 ok8 = true8;
            mask1 ok1 = true1;
            long j = 0;
            for (; j + 8 <= part; j += 8) PROJECTION_STEP(8)
            for (; j < part; j++) PROJECTION_STEP(1)
            ok = all8(ok8) && all1(ok1);
        }
        if (!ok) {
            normlab_columns_backward_f32_wide(sets, x, dy, part, given_mean ? given_mean + first : 0,
                                              given_rstd ? given_rstd + first : 0, affine, dx, sum_dy, sum_dy_xhat,
                                              sums_row_stride, sums_column_stride);
            continue;
        }
        long j = 0;
        for (; j + 8 <= part; j += 8) GRADIENT_STEP(8)
        for (; j < part; j++) GRADIENT_STEP(1)
        if (sum_dy && !element_sums) {
            for (long r = 0; r < rows; r++) {
                v8f part_d8 = splat8(0), part_dh8 = splat8(0);
                float part_d1 = 0, part_dh1 = 0;
                d8 sum_d8 = wzero8, sum_dh8 = wzero8;
                double sum_d1 = 0, sum_dh1 = 0;
                long count8 = 0, count1 = 0;
                for (j = 0; j + 8 <= part; j += 8) ROW_SUMS_STEP(8)
                for (; j < part; j++) ROW_SUMS_STEP(1)
                sum_d8 = wadd8(sum_d8, widen8(part_d8));
                sum_dh8 = wadd8(sum_dh8, widen8(part_dh8));
                v4d a = sum_d8.lo + sum_d8.hi, b = sum_dh8.lo + sum_dh8.hi;
                sum_dy[ROW_INDEX(r) * sums_row_stride] += ((a[0] + a[1]) + (a[2] + a[3])) + (sum_d1 + (double)part_d1);
                sum_dy_xhat[ROW_INDEX(r) * sums_row_stride] +=
                    ((b[0] + b[1]) + (b[2] + b[3])) + (sum_dh1 + (double)part_dh1);
            }
        }
    }
}

// Sums a block or tail made in Float64 (local: eight columns per sums row, rows by their index) added into the
// float32 arrays.
static inline void add_local_sums(float *sum_dy, float *sum_dy_xhat, const double *local_dy, const double *local_dy_xhat,
                                  long columns, long rows, long sums_row_stride) {
    const long local_rows = sums_row_stride ? rows : 1;
    for (long r = 0; r < local_rows; r++) {
        const long s = r * sums_row_stride;
        for (long c = 0; c < columns; c++) {
            sum_dy[s + c] += (float)local_dy[r * 8 + c];
            sum_dy_xhat[s + c] += (float)local_dy_xhat[r * 8 + c];
        }
    }
}

// Backward by blocks of eight columns (sets of at most eight rows; per-element sums or none), as forward_blocks.
static inline __attribute__((always_inline)) void
backward_blocks(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                const double *given_mean, const double *given_rstd, normlab_column_affine affine, float *dx,
                double *sum_dy, double *sum_dy_xhat, float *float_sum_dy, float *float_sum_dy_xhat,
                long sums_row_stride, const long fixed_rows) {
    CONSTANTS
    // float_sums: the per-element sums are float32 arrays (the caller adds them into Float64 every eight samples);
    // a block or tail that runs elsewhere sums into Float64 here first.
    const int float_sums = float_sum_dy != 0;
    double local_dy[8 * 8], local_dy_xhat[8 * 8];
    if (float_sums) sum_dy = local_dy, sum_dy_xhat = local_dy_xhat;
    const float *gamma = affine.gamma;
    const long per_element = affine.column_stride;
    long j = 0;
    for (; j + 8 <= width; j += 8) {
        BLOCK_STATISTICS
        v8f h[8], dh[8], sum = splat8(0), sum_products = splat8(0);
        for (long r = 0; r < rows; r++) {
            h[r] = d[r] * rstd + shift;
            v[r] = load8(dy + ROW_AT(r) + j);  // dy from here on
            dh[r] = v[r];
            if (gamma) {
                const long p = ROW_INDEX(r) * affine.row_stride + j * per_element;
                dh[r] = v[r] * (per_element ? load8(gamma + p) : splat8(gamma[p]));
            }
            sum += dh[r];
            sum_products += dh[r] * h[r];
        }
        v8f mean_term = centre ? DIVIDE(sum, m) : splat8(0), projection = DIVIDE(sum_products, divisor);
        ok &= (mean_term > -0x1p100f) & (mean_term < 0x1p100f) & (projection > -0x1p100f) & (projection < 0x1p100f);
        if (!all8(ok)) {
            normlab_column_affine shifted_affine = affine;
            if (gamma) shifted_affine.gamma = gamma + j * per_element;
            if (float_sums) {
                memset(local_dy, 0, sizeof local_dy);
                memset(local_dy_xhat, 0, sizeof local_dy_xhat);
                normlab_columns_backward_f32_wide(sets, x + j, dy + j, 8, given_mean ? given_mean + j : 0,
                                                  given_rstd ? given_rstd + j : 0, shifted_affine, dx + j, local_dy,
                                                  local_dy_xhat, sums_row_stride ? 8 : 0, 1);
                add_local_sums(float_sum_dy + j, float_sum_dy_xhat + j, local_dy, local_dy_xhat, 8, rows, sums_row_stride);
            } else {
                normlab_columns_backward_f32_wide(sets, x + j, dy + j, 8, given_mean ? given_mean + j : 0,
                                                  given_rstd ? given_rstd + j : 0, shifted_affine, dx + j,
                                                  sum_dy ? sum_dy + j : 0, sum_dy_xhat ? sum_dy_xhat + j : 0,
                                                  sums_row_stride, 1);
            }
            continue;
        }
        v8f column_dy = splat8(0), column_dy_xhat = splat8(0);
        for (long r = 0; r < rows; r++) {
            const long at = ROW_AT(r) + j;
            store8(dx + at, rstd * ((dh[r] - mean_term) - h[r] * projection));
            if (!sum_dy) continue;
            if (sums_row_stride == 0) {
                // Every row's sums are the same element's (BatchNorm per element): summed here, added once.
                column_dy += v[r];
                column_dy_xhat += v[r] * h[r];
            } else {
                const long s = ROW_INDEX(r) * sums_row_stride + j;
                if (float_sums) {
                    store8(float_sum_dy + s, load8(float_sum_dy + s) + v[r]);
                    store8(float_sum_dy_xhat + s, load8(float_sum_dy_xhat + s) + v[r] * h[r]);
                } else {
                    accumulate8(sum_dy + s, v[r]);
                    accumulate8(sum_dy_xhat + s, v[r] * h[r]);
                }
            }
        }
        if (sum_dy && sums_row_stride == 0) {
            if (float_sums) {
                store8(float_sum_dy + j, load8(float_sum_dy + j) + column_dy);
                store8(float_sum_dy_xhat + j, load8(float_sum_dy_xhat + j) + column_dy_xhat);
            } else {
                accumulate8(sum_dy + j, column_dy);
                accumulate8(sum_dy_xhat + j, column_dy_xhat);
            }
        }
    }
    if (j < width) {
        normlab_column_affine rest = affine;
        if (gamma) rest.gamma = gamma + j * per_element;
        if (float_sums) {
            memset(local_dy, 0, sizeof local_dy);
            memset(local_dy_xhat, 0, sizeof local_dy_xhat);
            backward_tiles(sets, x + j, dy + j, width - j, given_mean ? given_mean + j : 0,
                           given_rstd ? given_rstd + j : 0, rest, dx + j, local_dy, local_dy_xhat,
                           sums_row_stride ? 8 : 0, 1, fixed_rows);
            add_local_sums(float_sum_dy + j, float_sum_dy_xhat + j, local_dy, local_dy_xhat, width - j, rows,
                           sums_row_stride);
        } else {
            backward_tiles(sets, x + j, dy + j, width - j, given_mean ? given_mean + j : 0,
                           given_rstd ? given_rstd + j : 0, rest, dx + j, sum_dy ? sum_dy + j : 0,
                           sum_dy_xhat ? sum_dy_xhat + j : 0, sums_row_stride, 1, fixed_rows);
        }
    }
}

static inline __attribute__((always_inline)) void
backward_any(const normlab_column_sets *sets, const float *x, const float *dy, long width, const double *given_mean,
             const double *given_rstd, normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
             long sums_row_stride, long sums_column_stride, const long fixed_rows) {
    if (fixed_rows <= 8 && (!sum_dy || sums_column_stride == 1))
        backward_blocks(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, 0, 0,
                        sums_row_stride, fixed_rows);
    else
        backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride,
                       sums_column_stride, fixed_rows);
}

NORMLAB_CLONES
void normlab_columns_backward_f32(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                  const double *given_mean, const double *given_rstd, normlab_column_affine affine,
                                  float *dx, double *sum_dy, double *sum_dy_xhat, long sums_row_stride,
                                  long sums_column_stride) {
    BY_ROWS(backward_any, sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat,
            sums_row_stride, sums_column_stride)
}

static inline __attribute__((always_inline)) void
backward_float_sums(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                    normlab_column_affine affine, float *dx, float *sum_dy, float *sum_dy_xhat, long sums_row_stride,
                    const long fixed_rows) {
    backward_blocks(sets, x, dy, width, 0, 0, affine, dx, 0, 0, sum_dy, sum_dy_xhat, sums_row_stride, fixed_rows);
}

NORMLAB_CLONES
void normlab_columns_backward_f32_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                             long width, normlab_column_affine affine, float *dx, float *sum_dy,
                                             float *sum_dy_xhat, long sums_row_stride) {
    BY_ROWS(backward_float_sums, sets, x, dy, width, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride)
}
