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
    BY_ROWS(forward_tiles, sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
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

NORMLAB_CLONES
void normlab_columns_backward_f32(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                  const double *given_mean, const double *given_rstd, normlab_column_affine affine,
                                  float *dx, double *sum_dy, double *sum_dy_xhat, long sums_row_stride,
                                  long sums_column_stride) {
    BY_ROWS(backward_tiles, sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat,
            sums_row_stride, sums_column_stride)
}
