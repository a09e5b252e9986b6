// The float32 column kernels' general loops, backward (see column_sets_f32.c for the arithmetic): a tile's statistics
// and the two sums per column first, one loop of square roots and divisions, then dx, each row loop reading the tile's
// rows again from cache (L2: sixteen rows of a 2,048-column tile are 128 KB). They run sets of more than eight rows,
// and backward with one sum per row (γ per channel).
#include "column_tiles_f32.h"
#include "column_rows_f32.h"

#pragma clang fp contract(off)

#include "clones.h"

#include <stdlib.h>

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

// The two sums of TERMS_STEP from constants forward kept (normlab_columns_backward_f32_from_constants): the row loop of
// STATISTICS_STEP without its statistics, the sums in the same order.
#define KEPT_SUMS_STEP(W)                                                                                             \
    {                                                                                                                 \
        const vec##W mean = load##W(c.mean + j);                                                                      \
        vec##W sum_dh, sum_dh_d;                                                                                      \
        ROWS_SUM2(W, sum_dh, sum_dh_d, GRADIENT_SUMS_ROW(W), dh, dh * d)                                              \
        store##W(sums_dh + j, sum_dh);                                                                                \
        store##W(sums_dh_d + j, sum_dh_d);                                                                            \
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
        v4d a = halves8(sum_d8), b = halves8(sum_dh8);                                                                \
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
        if (sums_kind == SUMS_PER_ELEMENT && float_sums) {                                                            \
            const long s = row_sums_at + j;                                                                           \
            store##W(float_sum_dy + s, load##W(float_sum_dy + s) + d);                                                \
            store##W(float_sum_dy_xhat + s, load##W(float_sum_dy_xhat + s) + d * h);                                  \
        } else if (sums_kind == SUMS_PER_ELEMENT) {                                                                   \
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

// A tile out of float32's comfortable range, with per-element sums in float32 stages: the Float64 lanes into sums of
// its own, each rounded to float32 and added into the stages (as add_local_sums, column_sets_f32.c, for blocks).
static void wide_tile_into_stages(const normlab_column_sets *sets, const float *x, const float *dy, long part,
                                  normlab_column_affine affine, float *dx, float *stage_dy, float *stage_dy_xhat,
                                  long sums_row_stride) {
    const long rows = sets->rows;
    const long *const row_index = sets->row_index;
    double *local = calloc((size_t)(2 * rows * part), sizeof(double));
    if (!local) abort();  // a few hundred KB at most; nothing sensible is left to do without them
    normlab_columns_backward_f32_wide(sets, x, dy, part, 0, 0, affine, dx, local, local + rows * part, part, 1);
    for (long r = 0; r < rows; r++) {
        const long s = ROW_INDEX(r) * sums_row_stride, l = ROW_INDEX(r) * part;
        for (long c = 0; c < part; c++) {
            stage_dy[s + c] += (float)local[l + c];
            stage_dy_xhat[s + c] += (float)local[rows * part + l + c];
        }
    }
    free(local);
}

static inline __attribute__((always_inline)) void
backward_tiles(const normlab_column_sets *sets, const float *all_x, const float *all_dy, long width,
               const double *given_mean, const double *given_rstd, normlab_column_affine all_affine, float *all_dx,
               double *all_sum_dy, double *all_sum_dy_xhat, float *all_float_sum_dy, float *all_float_sum_dy_xhat,
               long sums_row_stride, long sums_column_stride,
               const float *kept_mean, const float *kept_rstd, const float *kept_shift,
               const long fixed_rows, const int fixed_gamma, const int fixed_sums, const int fixed_float_sums,
               const unsigned known) {
    CONSTANTS
    const int declared_gamma = fixed_gamma != ANY ? fixed_gamma
                               : !all_affine.gamma ? GAMMA_NONE
                               : all_affine.column_stride ? GAMMA_PER_ELEMENT : GAMMA_PER_ROW;
    // Per-element sums in float32 stages (the caller adds them into Float64 after at most eight samples).
    const int float_sums = fixed_float_sums;
    const int declared_sums = fixed_sums != ANY ? fixed_sums
                              : float_sums ? SUMS_PER_ELEMENT
                              : !all_sum_dy ? SUMS_NONE
                              : sums_column_stride == 1 ? SUMS_PER_ELEMENT : SUMS_PER_ROW;
    const int pair = rows == 2 && centre;
    // γ shared by a column's rows, with one sum per column (BatchNorm per element): Σdx̂ = γ·Σdy and Σdx̂·x̂ = γ·Σdy·x̂,
    // so the statistics pass sums dy and dy·(x − μ₀) — γ's and β's sums, added once per column — and dx =
    // (rstd·γ)·((dy − Σdy/m) − x̂·Σdy·x̂/divisor), with neither dx̂ nor a Float64 addition per row (as BACKWARD_BLOCK,
    // column_sets_f32.c, for sets of at most eight rows).
    const int shared_terms = declared_gamma == GAMMA_PER_ELEMENT && all_affine.row_stride == 0 &&
                             declared_sums == SUMS_PER_ELEMENT && sums_row_stride == 0 && !pair && !float_sums;
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
        float *float_sum_dy = float_sums ? all_float_sum_dy + first : 0;
        float *float_sum_dy_xhat = float_sums ? all_float_sum_dy_xhat + first : 0;
        tile_constants c;
        own_constants(&c);
        float mean_terms[TILE], projections[TILE], column_dy[shared_terms ? TILE : 1], column_dy_xhat[shared_terms ? TILE : 1];
        float high_sums[kept_shift && rows > FOLD && rows <= 2 * FOLD ? 2 * TILE : 1];
        const int gradient_sums = !pair;
        float *const sums_dh = mean_terms, *const sums_dh_d = projections;
        int ok;
        // Forward's constants, or made here. (A column forward made in Float64 lanes has a NaN shift, so a NaN
        // Σdx̂·x̂ and projection: TERMS_STEP finds its tile out of range, as the statistics would.)
        if (kept_shift && !pair) {
            c.mean = (float *)kept_mean + first;  // read only
            c.rstd = (float *)kept_rstd + first;
            c.shift = (float *)kept_shift + first;
            if (rows <= 2 * FOLD && (gamma_kind == GAMMA_PER_ROW || gamma_kind == GAMMA_NONE)) {
                kept_sums_rows(sets, &c, x, dy, part, affine, sums_dh, sums_dh_d, high_sums, rows, gamma_kind);
            } else if (TALL(rows, part) && rows > 2 * FOLD) {
                tall_deviation_sums(sets, x, dy, part, c.mean, affine, 0, 1, gamma_kind, 0, 0, sums_dh, sums_dh_d);
            } else {
                long j = 0;
                for (; j + 16 <= part; j += 16) KEPT_SUMS_STEP(16)  // two chains of additions side by side
                for (; j + 8 <= part; j += 8) KEPT_SUMS_STEP(8)
                for (; j < part; j++) KEPT_SUMS_STEP(1)
            }
            ok = 1;
        } else {
            long zeros;  // counted by forward; backward's sets are the same
            TILE_STATISTICS(ok, zeros)
            (void)zeros;
        }
        if (ok && pair && gamma_kind == GAMMA_PER_ROW && sums_kind == SUMS_PER_ROW) {
            // Range test, dx and the rows' sums in one pass.
            if (pair_rows(sets, &c, x, dy, part, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride)) continue;
            ok = 0;
        } else if (ok) {
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
        if (!ok && float_sums) {
            wide_tile_into_stages(sets, x, dy, part, affine, dx, float_sum_dy, float_sum_dy_xhat, sums_row_stride);
            continue;
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
        } else if (gamma_kind == GAMMA_PER_ELEMENT && sums_kind == SUMS_PER_ELEMENT && float_sums) {
            long r = 0;
            for (; r + SIDE_BY_SIDE <= rows; r += SIDE_BY_SIDE)
                gradient_rows_staged(sets, &c, mean_terms, projections, x, dy, part, affine, dx, float_sum_dy,
                                     float_sum_dy_xhat, sums_row_stride, r, SIDE_BY_SIDE);
            if (r < rows)
                gradient_rows_staged(sets, &c, mean_terms, projections, x, dy, part, affine, dx, float_sum_dy,
                                     float_sum_dy_xhat, sums_row_stride, r, rows - r);
        } else if (gamma_kind == GAMMA_PER_ROW && sums_kind == SUMS_PER_ROW) {
            long r = 0;
            for (; r + SIDE_BY_SIDE <= rows; r += SIDE_BY_SIDE)
                gradient_rows(sets, &c, mean_terms, projections, x, dy, part, affine, dx, sum_dy, sum_dy_xhat,
                              sums_row_stride, r, SIDE_BY_SIDE);
            if (r < rows)
                gradient_rows(sets, &c, mean_terms, projections, x, dy, part, affine, dx, sum_dy, sum_dy_xhat,
                              sums_row_stride, r, rows - r);
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

static inline __attribute__((always_inline)) void
backward_tiles_any(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                   const double *given_mean, const double *given_rstd, normlab_column_affine affine, float *dx,
                   double *sum_dy, double *sum_dy_xhat, long sums_row_stride, long sums_column_stride,
                   const float *kept_mean, const float *kept_rstd, const float *kept_shift) {
    float *const no_stage = 0;
    // BatchNorm over a group's two channels of eight samples (`layer norm over=n,c`), γ per channel
    const int per_row = affine.gamma && !affine.column_stride && sum_dy && sums_column_stride != 1;
    if (sets->rows == 16 && per_row)
        backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, no_stage, no_stage,
                       sums_row_stride, sums_column_stride, kept_mean, kept_rstd, kept_shift, 16, GAMMA_PER_ROW, SUMS_PER_ROW,
                       0, 0);
    // Per-position sets of a group's two channels with γ per channel (`layer groupnorm 32 reduce=channels`)
    else if (sets->rows == 2 && per_row)
        backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, no_stage, no_stage,
                       sums_row_stride, sums_column_stride, kept_mean, kept_rstd, kept_shift, 2, GAMMA_PER_ROW, SUMS_PER_ROW,
                       0, 0);
    else
        backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, no_stage, no_stage,
                       sums_row_stride, sums_column_stride, kept_mean, kept_rstd, kept_shift, sets->rows, ANY, ANY,
                       0, 0);
}

NORMLAB_CLONES
void normlab_columns_f32_backward_tiles(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                        const double *given_mean, const double *given_rstd,
                                        normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
                                        long sums_row_stride, long sums_column_stride) {
    backward_tiles_any(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride,
                       sums_column_stride, 0, 0, 0);
}

NORMLAB_CLONES
void normlab_columns_backward_f32_from_constants(const normlab_column_sets *sets, const float *x, const float *dy,
                                                 long width, normlab_column_affine affine, float *dx, double *sum_dy,
                                                 double *sum_dy_xhat, long sums_row_stride, long sums_column_stride,
                                                 const float *first_mean, const float *rstd, const float *shift) {
    if (sets->rows > 8 || (sum_dy && sums_column_stride != 1))
        backward_tiles_any(sets, x, dy, width, 0, 0, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride,
                           sums_column_stride, first_mean, rstd, shift);
    else
        normlab_columns_backward_f32(sets, x, dy, width, 0, 0, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride,
                                     sums_column_stride);
}

NORMLAB_CLONES
void normlab_columns_backward_f32_tiles_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                                   long width, normlab_column_affine affine, float *dx,
                                                   float *sum_dy, float *sum_dy_xhat, long sums_row_stride) {
    const float *const no_constants = 0;
    // γ per element (given, or ones the caller made), the common case, with its loops known; rows at multiples of the
    // stride, centred (PyDLLib's LayerNorm), without the per-row tests for a table of rows.
    if (affine.gamma && affine.column_stride == 1 && !sets->row_offsets && !sets->row_index && sets->centre)
        backward_tiles(sets, x, dy, width, 0, 0, affine, dx, 0, 0, sum_dy, sum_dy_xhat, sums_row_stride, 1,
                       no_constants, no_constants, no_constants, sets->rows, GAMMA_PER_ELEMENT, SUMS_PER_ELEMENT, 1,
                       KNOWN_PLAIN_ROWS | KNOWN_CENTRED);
    else if (affine.gamma && affine.column_stride == 1)
        backward_tiles(sets, x, dy, width, 0, 0, affine, dx, 0, 0, sum_dy, sum_dy_xhat, sums_row_stride, 1,
                       no_constants, no_constants, no_constants, sets->rows, GAMMA_PER_ELEMENT, SUMS_PER_ELEMENT, 1, 0);
    else
        backward_tiles(sets, x, dy, width, 0, 0, affine, dx, 0, 0, sum_dy, sum_dy_xhat, sums_row_stride, 1,
                       no_constants, no_constants, no_constants, sets->rows, ANY, SUMS_PER_ELEMENT, 1, 0);
}
