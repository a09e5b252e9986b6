// The float32 column kernels' general loops (see column_sets_f32.c for the arithmetic): a tile's statistics for every
// column first, one loop of square roots and divisions, then x̂ and y (forward), or the two sums per column and then
// dx (backward), each row loop reading the tile's rows again from L1. They run sets of more than eight rows, the
// columns after the last block of eight, and backward with one sum per row (γ per channel).
#include "column_lanes_f32.h"

#pragma clang fp contract(off)

#include "clones.h"

enum { AHEAD = 128 };  // columns: half a KB of each row

// μ₀, rstd and c of a tile's columns, as x̂ is made from them.
typedef struct {
    float mean[TILE], rstd[TILE], shift[TILE];
} tile_constants;

// How backward reads γ and where it adds dy and dy·x̂ (γ's and β's sums): known when a call's layout is (the common
// ones get loops without the tests), or read from the call (ANY).
enum { ANY = -1, GAMMA_NONE = 0, GAMMA_PER_ROW = 1, GAMMA_PER_ELEMENT = 2, SUMS_NONE = 0, SUMS_PER_ELEMENT = 1,
       SUMS_PER_ROW = 2 };

// dx̂ = dy·γ of the columns at j (dy in `dh`), γ at row_p along the row, or row_gamma for the whole row.
#define TIMES_GAMMA(W, dh, row_p, row_gamma)                                                                          \
    if (gamma_kind == GAMMA_PER_ELEMENT) dh = dh * load##W(gamma + (row_p) + j);                                     \
    else if (gamma_kind == GAMMA_PER_ROW) dh = dh * splat##W(row_gamma);

// Row r's d = x − μ₀ and dx̂ = dy·γ at the columns at j, for backward's sums made with the statistics.
#define GRADIENT_SUMS_ROW(W)                                                                                          \
    const long row_ = ROW_AT(r);                                                                                      \
    vec##W d = load##W(x + row_ + j) - mean, dh = load##W(dy + row_ + j);                                             \
    TIMES_GAMMA(W, dh, ROW_INDEX(r) * affine.row_stride, gamma[ROW_INDEX(r) * affine.row_stride])                    \
    __builtin_prefetch(x + row_ + j + AHEAD);                                                                         \
    __builtin_prefetch(dy + row_ + j + AHEAD);

// The statistics of the columns at j into c (and, where asked, μ, σ², rstd, Σ(x − μ)² in Float64); clears ok's lanes
// for numbers out of range, counts zero variances. Each row's x AHEAD columns on is fetched on the way: a tile's rows
// are many streams at once, more than the hardware's prefetchers follow. With gradient_sums (backward), the same row
// loop also sums dx̂ = dy·γ and dx̂·(x − μ₀) into sums_dh and sums_dh_d: Σdx̂·x̂ = rstd·Σdx̂·(x − μ₀) + c·Σdx̂ then
// needs no pass of its own (TERMS_STEP).
#define STATISTICS_STEP(W)                                                                                            \
    {                                                                                                                 \
        vec##W first = load##W(x + ROW_AT(0) + j), mean = splat##W(0), sum, deviations, squares;                      \
        vec##W offset = splat##W(0);                                                                                  \
        if (rows == 2 && centre) {                                                                                    \
            vec##W d0_, d1_;                                                                                          \
            PAIR_STATISTICS(W, first, load##W(x + ROW_AT(1) + j), d0_, d1_)                                           \
            (void)d0_; (void)sum;                                                                                     \
        } else {                                                                                                      \
            if (centre) {                                                                                             \
                ROWS_SUM(W, sum, 1, load##W(x + ROW_AT(r) + j) - first)                                               \
                mean = first + DIVIDE(sum, m);                                                                        \
            }                                                                                                         \
            if (gradient_sums) {                                                                                      \
                vec##W sum_dh, sum_dh_d;                                                                              \
                ROWS_SUM4(W, deviations, squares, sum_dh, sum_dh_d, GRADIENT_SUMS_ROW(W), d, d * d, dh, dh * d)      \
                store##W(sums_dh + j, sum_dh);                                                                        \
                store##W(sums_dh_d + j, sum_dh_d);                                                                    \
            } else {                                                                                                  \
                ROWS_SUM2(W, deviations, squares, const long row_ = ROW_AT(r); vec##W d = load##W(x + row_ + j) - mean; \
                          __builtin_prefetch(x + row_ + j + AHEAD);, d, d * d)                                        \
            }                                                                                                         \
            if (centre) offset = DIVIDE(deviations, m);                                                               \
            if (centre) squares = max0_##W(squares - deviations * offset);                                            \
        }                                                                                                             \
        vec##W variance = DIVIDE(squares, divisor), shifted = variance + eps;                                         \
        ok##W &= (shifted >= 0x1p-120f) & (shifted <= 0x1p120f);                                                      \
        if (!(rows == 2 && centre)) ok##W &= (mean - mean == 0) & (offset - offset == 0);                             \
        zeros##W -= variance == 0;                                                                                    \
        store##W(c.mean + j, mean);                                                                                   \
        store##W(c.rstd + j, shifted);                                                                                \
        store##W(c.shift + j, offset);                                                                                \
        if (narrowed) {                                                                                               \
            NARROWED_MOMENTS(W, narrowed, mean, offset, variance, squares)                                            \
        } else {                                                                                                      \
            if (mean_out) wstore##W(mean_out + j, wadd##W(widen##W(mean), widen##W(offset)));                         \
            if (variance_out) wstore##W(variance_out + j, widen##W(variance));                                        \
            if (sum_squares_out) wstore##W(sum_squares_out + j, widen##W(squares));                                   \
        }                                                                                                             \
    }

// A tile's statistics; 0 when a column's numbers are out of range (the tile then runs in Float64 lanes).
// One square root and division per column, run back to back for the whole tile so they pipeline (fused into the
// step above, each waited for the last: a third of forward's time).
#define RSTD_STEP(W)                                                                                                  \
    {                                                                                                                 \
        vec##W rstd = 1.0f / __builtin_elementwise_sqrt(load##W(c.rstd + j));                                         \
        store##W(c.rstd + j, rstd);                                                                                   \
        store##W(c.shift + j, -load##W(c.shift + j) * rstd);                                                          \
        if (narrowed) store##W(narrowed->rstd + j, rstd);                                                             \
        else if (rstd_out) wstore##W(rstd_out + j, widen##W(rstd));                                                   \
    }

#define TILE_STATISTICS(ok, zeros)                                                                                    \
    {                                                                                                                 \
        mask16 ok16 = true16, zeros16 = {0};                                                                          \
        mask8 ok8 = true8, zeros8 = {0, 0, 0, 0, 0, 0, 0, 0};                                                         \
        mask1 ok1 = true1, zeros1 = 0;                                                                                \
        long j = 0;                                                                                                   \
        for (; j + 16 <= part; j += 16) STATISTICS_STEP(16)                                                           \
        for (; j + 8 <= part; j += 8) STATISTICS_STEP(8)                                                              \
        for (; j < part; j++) STATISTICS_STEP(1)                                                                      \
        ok = all16(ok16) && all8(ok8) && all1(ok1);                                                                   \
        zeros8 += __builtin_shufflevector(zeros16, zeros16, 0, 1, 2, 3, 4, 5, 6, 7) +                                 \
                  __builtin_shufflevector(zeros16, zeros16, 8, 9, 10, 11, 12, 13, 14, 15);                            \
        zeros = (long)(((zeros8[0] + zeros8[1]) + (zeros8[2] + zeros8[3])) + ((zeros8[4] + zeros8[5]) + (zeros8[6] + zeros8[7]))) - zeros1; \
        if (ok && !rstd_later) {                                                                                      \
            for (j = 0; j + 8 <= part; j += 8) RSTD_STEP(8)                                                           \
            for (; j < part; j++) RSTD_STEP(1)                                                                        \
        }                                                                                                             \
    }

// x̂ and y of row r at the columns at j (`at` its offset): each element alone, so rows may go in any order.
#define NORMALISE_STEP(W)                                                                                             \
    {                                                                                                                 \
        const long at = row + j;                                                                                      \
        vec##W h = (load##W(x + at) - load##W(c->mean + j)) * load##W(c->rstd + j) + load##W(c->shift + j);           \
        if (has_xhat) store##W(xhat + at, h);                                                                         \
        if (has_y) {                                                                                                  \
            if (!has_gamma) {                                                                                         \
                store##W(y + at, h);                                                                                  \
            } else {                                                                                                  \
                const long p = parameters + j;                                                                        \
                vec##W g = per_element ? load##W(gamma + p) : splat##W(row_gamma);                                    \
                vec##W b = !has_beta ? splat##W(0) : per_element ? load##W(beta + p) : splat##W(row_beta);            \
                store##W(y + at, g * h + b);                                                                          \
            }                                                                                                         \
        }                                                                                                             \
    }

// x̂ and y of a tile, row after row (each row's x read and y written as one run, rather than all the rows' streams
// eight columns at a time); called with constant flags for the common cases, so each gets loops without their tests.
static inline __attribute__((always_inline)) void
normalise_tile(const normlab_column_sets *sets, const tile_constants *c, const float *x, long part,
               normlab_column_affine affine, float *xhat, float *y, const int has_xhat, const int has_y,
               const int has_gamma, const int has_beta, const long per_element, const long rows) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma, *beta = affine.beta;
    for (long r = 0; r < rows; r++) {
        const long row = ROW_AT(r), parameters = ROW_INDEX(r) * affine.row_stride;
        // γ and β per channel: one value for the whole row, read once.
        const float row_gamma = has_gamma && !per_element ? gamma[parameters] : 0;
        const float row_beta = has_beta && !per_element ? beta[parameters] : 0;
        (void)parameters; (void)row_gamma; (void)row_beta;
        long j = 0;
        for (; j + 8 <= part; j += 8) NORMALISE_STEP(8)
        for (; j < part; j++) NORMALISE_STEP(1)
    }
}

// rstd = 1/√(σ² + eps) and the shift −(μ − μ₀)·rstd of the W columns at `at`, made from what c holds until then.
#define RSTD_AT(W, at)                                                                                                \
    {                                                                                                                 \
        vec##W rstd_ = 1.0f / __builtin_elementwise_sqrt(load##W(c->rstd + (at)));                                    \
        store##W(c->rstd + (at), rstd_);                                                                              \
        store##W(c->shift + (at), -load##W(c->shift + (at)) * rstd_);                                                 \
        if (narrowed) store##W(narrowed->rstd + (at), rstd_);                                                         \
        else if (rstd_out) wstore##W(rstd_out + (at), widen##W(rstd_));                                               \
    }

// y with γ and β per row (`layer norm over=n,c`: a row is a channel of a sample), thirty-two columns at a time with
// their constants in registers: one load of x per element rather than four (row after row, the constants came from
// the stack, and the loads were the limit). Each block's rstd is made a block ahead (the tile's statistics leave
// σ² + eps), so its square roots and divisions run beside the block before. The same operations per element as
// normalise_tile.
static inline __attribute__((always_inline)) void
normalise_tile_row_affine(const normlab_column_sets *sets, tile_constants *c, const float *x, long part,
                          normlab_column_affine affine, float *y, double *rstd_out,
                          const normlab_narrowed_statistics *narrowed, const long rows) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    float gammas[rows], betas[rows];
    long at_row[rows];
    for (long r = 0; r < rows; r++) {
        gammas[r] = ((const float *)affine.gamma)[ROW_INDEX(r) * affine.row_stride];
        betas[r] = ((const float *)affine.beta)[ROW_INDEX(r) * affine.row_stride];
        at_row[r] = ROW_AT(r);
    }
    enum { BLOCK = 32 };
    long j = 0;
    if (BLOCK <= part) RSTD_AT(32, 0)
    for (; j + BLOCK <= part; j += BLOCK) {
        if (j + 2 * BLOCK <= part) RSTD_AT(32, j + BLOCK)
        const vec32 mean = load32(c->mean + j), rstd = load32(c->rstd + j), shift = load32(c->shift + j);
        for (long r = 0; r < rows; r++) {
            const long at = at_row[r] + j;
            const vec32 h = (load32(x + at) - mean) * rstd + shift;
            store32(y + at, splat32(gammas[r]) * h + splat32(betas[r]));
        }
    }
    const long rest = j;
    for (; j + 8 <= part; j += 8) RSTD_AT(8, j)
    for (; j < part; j++) RSTD_AT(1, j)
    for (long r = 0; r < rows; r++) {
        for (j = rest; j < part; j++) {
            const long at = at_row[r] + j;
            const float h = (x[at] - c->mean[j]) * c->rstd[j] + c->shift[j];
            y[at] = gammas[r] * h + betas[r];
        }
    }
}

static inline __attribute__((always_inline)) void
forward_tiles(const normlab_column_sets *sets, const float *all_x, long width, normlab_column_affine all_affine,
              float *all_xhat, float *all_y, double *all_mean, double *all_variance, double *all_rstd,
              double *all_sum_squares, long *zero_variances, int *finite,
              const normlab_narrowed_statistics *all_narrowed, const long fixed_rows) {
    const unsigned known = 0;
    CONSTANTS
    // Forward makes no gradient sums.
    const int gradient_sums = 0, gamma_kind = GAMMA_NONE;
    const float *const dy = 0;
    float *const sums_dh = 0, *const sums_dh_d = 0;
    (void)dy; (void)sums_dh; (void)sums_dh_d;
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
        const normlab_narrowed_statistics narrowed_tile = all_narrowed ? narrowed_from(all_narrowed, first)
                                                                       : (normlab_narrowed_statistics){0};
        const normlab_narrowed_statistics *narrowed = all_narrowed ? &narrowed_tile : 0;
        tile_constants c;
        int ok;
        long zeros;
        const int row_affine = !xhat && y && gamma && beta && affine.column_stride == 0, rstd_later = row_affine;
        TILE_STATISTICS(ok, zeros)
        if (!ok) {
            normlab_columns_forward_f32_wide(sets, x, part, affine, xhat, y, mean_out, variance_out, rstd_out,
                                             sum_squares_out, zero_variances, finite);
            if (narrowed) narrow_from_wide(narrowed, 0, mean_out, variance_out, rstd_out, sum_squares_out, part);
            continue;
        }
        *zero_variances += zeros;
        const int only_y = !xhat && y, per_element = affine.column_stride == 1;
        if (only_y && gamma && beta && per_element) normalise_tile(sets, &c, x, part, affine, 0, y, 0, 1, 1, 1, 1, rows);
        else if (row_affine) normalise_tile_row_affine(sets, &c, x, part, affine, y, rstd_out, narrowed, rows);
        else if (only_y && !gamma) normalise_tile(sets, &c, x, part, affine, 0, y, 0, 1, 0, 0, 0, rows);
        else normalise_tile(sets, &c, x, part, affine, xhat, y, xhat != 0, y != 0, gamma != 0, beta != 0, per_element, rows);
    }
}


// The columns at j of the row at row_at (its γ at row_p, or row_gamma for the whole row) in backward: their offset
// `at`, dy, x̂ and dx̂ = dy·γ.
#define BACKWARD_ELEMENTS(W, row_at, row_p, row_gamma)                                                                \
    const long at = (row_at) + j;                                                                                     \
    vec##W d = load##W(dy + at), h = (load##W(x + at) - mean) * rstd + shift, dh = d;                                 \
    TIMES_GAMMA(W, dh, row_p, row_gamma)

// Row r's.
#define BACKWARD_ROW(W)                                                                                               \
    BACKWARD_ELEMENTS(W, ROW_AT(r), ROW_INDEX(r) * affine.row_stride, gamma[ROW_INDEX(r) * affine.row_stride])

#define CONSTANTS_AT(W)                                                                                               \
    vec##W mean = load##W(c.mean + j), rstd = load##W(c.rstd + j), shift = load##W(c.shift + j);

// Σdx̂/m and Σ(dx̂·x̂)/divisor per column, from the sums the statistics pass made: x̂ = (x − μ₀)·rstd + c, so
// Σdx̂·x̂ = rstd·Σdx̂·(x − μ₀) + c·Σdx̂.
// With shared terms (γ shared by a column's rows: dx̂ is dy, see backward_tiles) the sums are Σdy and Σdy·x̂ — γ's and
// β's own — kept for them, and dx's scale rstd·γ must stay in range too.
#define TERMS_STEP(W)                                                                                                 \
    {                                                                                                                 \
        vec##W rstd = load##W(c.rstd + j), shift = load##W(c.shift + j);                                              \
        vec##W sum = load##W(mean_terms + j), sum_products = rstd * load##W(projections + j) + shift * sum;            \
        vec##W mean_term = centre ? DIVIDE(sum, m) : splat##W(0), projection = DIVIDE(sum_products, divisor);         \
        ok##W &= (mean_term > -0x1p100f) & (mean_term < 0x1p100f) & (projection > -0x1p100f) & (projection < 0x1p100f); \
        if (shared_terms) {                                                                                           \
            vec##W scale = rstd * load##W(gamma + j);                                                                 \
            ok##W &= (scale > -0x1p100f) & (scale < 0x1p100f);                                                        \
            store##W(column_dy + j, sum);                                                                             \
            store##W(column_dy_xhat + j, sum_products);                                                               \
        }                                                                                                             \
        store##W(mean_terms + j, mean_term);                                                                          \
        store##W(projections + j, projection);                                                                        \
    }

// Sets of two need neither sum (GRADIENT_PAIR_STEP): their backward leaves float32's range only where dx̂₀ − dx̂₁ does.
#define PAIR_RANGE_STEP(W)                                                                                            \
    {                                                                                                                 \
        vec##W gap = splat##W(0);                                                                                     \
        for (long r = 0; r < 2; r++) {                                                                                \
            CONSTANTS_AT(W)                                                                                           \
            BACKWARD_ROW(W)                                                                                           \
            (void)at; (void)h;                                                                                        \
            gap = r == 0 ? dh : gap - dh;                                                                             \
        }                                                                                                             \
        ok##W &= (gap > -0x1p100f) & (gap < 0x1p100f);                                                                \
    }

// Adds row r's dy and dy·x̂ at the columns at j into its two sums: eight lanes, eight blocks of columns at a time in
// float32, into Float64.
#define ROW_SUMS_ADD(W, d, h)                                                                                         \
    part_d##W += d;                                                                                                   \
    part_dh##W += d * h;                                                                                              \
    if (++count##W % FOLD == 0) {                                                                                     \
        sum_d##W = wadd##W(sum_d##W, widen##W(part_d##W)); sum_dh##W = wadd##W(sum_dh##W, widen##W(part_dh##W));      \
        part_d##W = splat##W(0); part_dh##W = splat##W(0);                                                            \
    }

#define ROW_SUMS_START                                                                                                \
    v8f part_d8 = splat8(0), part_dh8 = splat8(0);                                                                    \
    float part_d1 = 0, part_dh1 = 0;                                                                                  \
    d8 sum_d8 = wzero8, sum_dh8 = wzero8;                                                                             \
    double sum_d1 = 0, sum_dh1 = 0;                                                                                   \
    long count8 = 0, count1 = 0;                                                                                      \
    (void)count8; (void)count1;

// Row r's two sums added to γ's and β's.
#define ROW_SUMS_END                                                                                                  \
    {                                                                                                                 \
        sum_d8 = wadd8(sum_d8, widen8(part_d8));                                                                      \
        sum_dh8 = wadd8(sum_dh8, widen8(part_dh8));                                                                   \
        v4d a = sum_d8.lo + sum_d8.hi, b = sum_dh8.lo + sum_dh8.hi;                                                   \
        sum_dy[ROW_INDEX(r) * sums_row_stride] += ((a[0] + a[1]) + (a[2] + a[3])) + (sum_d1 + (double)part_d1);       \
        sum_dy_xhat[ROW_INDEX(r) * sums_row_stride] += ((b[0] + b[1]) + (b[2] + b[3])) + (sum_dh1 + (double)part_dh1); \
    }

// dx = rstd·((dx̂ − Σdx̂/m) − x̂·Σ(dx̂·x̂)/divisor); dy and dy·x̂ added into per-element sums for γ and β, or into the
// row's sums (γ per channel).
#define GRADIENT_STEP(W)                                                                                              \
    {                                                                                                                 \
        CONSTANTS_AT(W)                                                                                               \
        vec##W mean_term = load##W(mean_terms + j), projection = load##W(projections + j);                            \
        BACKWARD_ELEMENTS(W, row_at, row_p, row_gamma)                                                                \
        const vec##W scale = shared_terms ? rstd * load##W(gamma + j) : rstd;                                         \
        store##W(dx + at, scale * ((dh - mean_term) - h * projection));                                              \
        if (sums_kind == SUMS_PER_ELEMENT) {                                                                          \
            const long s = row_sums_at + j;                                                                           \
            accumulate##W(sum_dy + s, d);                                                                             \
            accumulate##W(sum_dy_xhat + s, d * h);                                                                    \
        } else if (sums_kind == SUMS_PER_ROW) {                                                                       \
            ROW_SUMS_ADD(W, d, h)                                                                                     \
        }                                                                                                             \
    }

// Sets of two: dx = ±(dx̂₀ − dx̂₁)·eps·rstd³/2, what the general form comes to (with x̂₀ = −x̂₁, x̂² = 1 − eps·rstd²): its
// two terms cancel to eps's order, and in float32 they would keep few of dx's digits.
#define GRADIENT_PAIR_STEP(W)                                                                                         \
    {                                                                                                                 \
        CONSTANTS_AT(W)                                                                                               \
        vec##W pair_dh[2], pair_d[2], pair_h[2];                                                                      \
        long pair_at[2];                                                                                              \
        for (long r = 0; r < 2; r++) {                                                                                \
            BACKWARD_ROW(W)                                                                                           \
            pair_at[r] = at; pair_d[r] = d; pair_h[r] = h; pair_dh[r] = dh;                                           \
        }                                                                                                             \
        vec##W k = ((0.5f * eps * rstd) * rstd) * rstd;                                                               \
        store##W(dx + pair_at[0], (pair_dh[0] - pair_dh[1]) * k);                                                     \
        store##W(dx + pair_at[1], (pair_dh[1] - pair_dh[0]) * k);                                                     \
        for (long r = 0; sums_kind == SUMS_PER_ELEMENT && r < 2; r++) {                                               \
            const long s = ROW_INDEX(r) * sums_row_stride + j;                                                        \
            accumulate##W(sum_dy + s, pair_d[r]);                                                                     \
            accumulate##W(sum_dy_xhat + s, pair_d[r] * pair_h[r]);                                                    \
        }                                                                                                             \
    }

// A set of two's row sums, after its dx (the general sets make them with dx).
#define PAIR_ROW_SUMS_STEP(W)                                                                                         \
    {                                                                                                                 \
        CONSTANTS_AT(W)                                                                                               \
        BACKWARD_ROW(W)                                                                                               \
        (void)dh;                                                                                                     \
        ROW_SUMS_ADD(W, d, h)                                                                                         \
    }

static inline __attribute__((always_inline)) void
backward_tiles(const normlab_column_sets *sets, const float *all_x, const float *all_dy, long width,
               const double *given_mean, const double *given_rstd, normlab_column_affine all_affine, float *all_dx,
               double *all_sum_dy, double *all_sum_dy_xhat, long sums_row_stride, long sums_column_stride,
               const long fixed_rows, const int fixed_gamma, const int fixed_sums) {
    const unsigned known = 0;
    CONSTANTS
    const int declared_gamma = fixed_gamma != ANY ? fixed_gamma
                               : !all_affine.gamma ? GAMMA_NONE
                               : all_affine.column_stride ? GAMMA_PER_ELEMENT : GAMMA_PER_ROW;
    const int declared_sums = fixed_sums != ANY ? fixed_sums
                              : !all_sum_dy ? SUMS_NONE
                              : sums_column_stride == 1 ? SUMS_PER_ELEMENT : SUMS_PER_ROW;
    const int pair = rows == 2 && centre;
    // γ shared by a column's rows, with one sum per column (BatchNorm per element): Σdx̂ = γ·Σdy and Σdx̂·x̂ = γ·Σdy·x̂,
    // so the statistics pass sums dy and dy·(x − μ₀) — γ's and β's sums, added once per column — and dx =
    // (rstd·γ)·((dy − Σdy/m) − x̂·Σdy·x̂/divisor), with neither dx̂ nor a Float64 addition per row (as BACKWARD_BLOCK,
    // column_sets_f32.c, for sets of at most eight rows).
    const int shared_terms = declared_gamma == GAMMA_PER_ELEMENT && all_affine.row_stride == 0 &&
                             declared_sums == SUMS_PER_ELEMENT && sums_row_stride == 0 && !pair;
    const int gamma_kind = shared_terms ? GAMMA_NONE : declared_gamma;
    const int sums_kind = shared_terms ? SUMS_NONE : declared_sums;
    double *const mean_out = 0, *const variance_out = 0, *const rstd_out = 0, *const sum_squares_out = 0;
    const normlab_narrowed_statistics *const narrowed = 0;
    for (long first = 0; first < width; first += TILE) {
        const long part = width - first < TILE ? width - first : TILE;
        normlab_column_affine affine = all_affine;
        if (affine.gamma) affine.gamma = (const float *)affine.gamma + first * affine.column_stride;
        const float *x = all_x + first, *dy = all_dy + first, *gamma = affine.gamma;
        float *dx = all_dx + first;
        double *sum_dy = all_sum_dy ? all_sum_dy + first * sums_column_stride : 0;
        double *sum_dy_xhat = all_sum_dy_xhat ? all_sum_dy_xhat + first * sums_column_stride : 0;
        tile_constants c;
        float mean_terms[TILE], projections[TILE], column_dy[shared_terms ? TILE : 1], column_dy_xhat[shared_terms ? TILE : 1];
        const int gradient_sums = !pair;
        float *const sums_dh = mean_terms, *const sums_dh_d = projections;
        int ok;
        const int rstd_later = 0;
        long zeros;  // counted by forward; backward's sets are the same
        TILE_STATISTICS(ok, zeros)
        (void)zeros;
        if (ok) {
            mask8 ok8 = true8;
            mask1 ok1 = true1;
            long j = 0;
            if (pair) {
                for (; j + 8 <= part; j += 8) PAIR_RANGE_STEP(8)
                for (; j < part; j++) PAIR_RANGE_STEP(1)
            } else {
                for (; j + 8 <= part; j += 8) TERMS_STEP(8)
                for (; j < part; j++) TERMS_STEP(1)
            }
            ok = all8(ok8) && all1(ok1);
        }
        if (!ok) {
            normlab_columns_backward_f32_wide(sets, x, dy, part, given_mean ? given_mean + first : 0,
                                              given_rstd ? given_rstd + first : 0, affine, dx, sum_dy, sum_dy_xhat,
                                              sums_row_stride, sums_column_stride);
            continue;
        }
        if (shared_terms && sum_dy) {
            long j = 0;
            for (; j + 8 <= part; j += 8) {
                accumulate8(sum_dy + j, load8(column_dy + j));
                accumulate8(sum_dy_xhat + j, load8(column_dy_xhat + j));
            }
            for (; j < part; j++) {
                accumulate1(sum_dy + j, column_dy[j]);
                accumulate1(sum_dy_xhat + j, column_dy_xhat[j]);
            }
        }
        if (pair) {
            long j = 0;
            for (; j + 8 <= part; j += 8) GRADIENT_PAIR_STEP(8)
            for (; j < part; j++) GRADIENT_PAIR_STEP(1)
            for (long r = 0; sums_kind == SUMS_PER_ROW && r < rows; r++) {
                ROW_SUMS_START
                for (j = 0; j + 8 <= part; j += 8) PAIR_ROW_SUMS_STEP(8)
                for (; j < part; j++) PAIR_ROW_SUMS_STEP(1)
                ROW_SUMS_END
            }
        } else {
            // Row after row, as forward's x̂ and y (each element alone; a sum shared by rows still takes them in
            // row order).
            for (long r = 0; r < rows; r++) {
                // What the row's steps share, read once (stores through memcpy could alias them).
                const long row_at = ROW_AT(r), row_p = ROW_INDEX(r) * affine.row_stride;
                const long row_sums_at = ROW_INDEX(r) * sums_row_stride;
                const float row_gamma = gamma_kind == GAMMA_PER_ROW ? gamma[row_p] : 0;
                ROW_SUMS_START
                long j = 0;
                for (; j + 8 <= part; j += 8) GRADIENT_STEP(8)
                for (; j < part; j++) GRADIENT_STEP(1)
                if (sums_kind == SUMS_PER_ROW) ROW_SUMS_END
            }
        }
    }
}

NORMLAB_CLONES
void normlab_columns_f32_forward_tiles(const normlab_column_sets *sets, const float *x, long width,
                                       normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                       double *variance_out, double *rstd_out, double *sum_squares_out,
                                       long *zero_variances, int *finite,
                                       const normlab_narrowed_statistics *narrowed) {
    if (sets->rows == 16)  // BatchNorm over a group's two channels of eight samples (`layer norm over=n,c`)
        forward_tiles(sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
                      zero_variances, finite, narrowed, 16);
    else
        forward_tiles(sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
                      zero_variances, finite, narrowed, sets->rows);
}

NORMLAB_CLONES
void normlab_columns_f32_backward_tiles(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                        const double *given_mean, const double *given_rstd,
                                        normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
                                        long sums_row_stride, long sums_column_stride) {
    // BatchNorm over a group's two channels of eight samples (`layer norm over=n,c`), γ per channel
    if (sets->rows == 16 && affine.gamma && !affine.column_stride && sum_dy && sums_column_stride != 1)
        backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride,
                       sums_column_stride, 16, GAMMA_PER_ROW, SUMS_PER_ROW);
    else
        backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride,
                       sums_column_stride, sets->rows, ANY, ANY);
}
