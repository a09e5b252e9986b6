// The float32 column kernels' general loops, forward (see column_sets_f32.c for the arithmetic): a tile's statistics
// for every column first, one loop of square roots and divisions, then x̂ and y, each row loop reading the tile's rows
// again from L1. They run sets of more than eight rows and the columns after the last block of sixteen or eight.
#include "column_tiles_f32.h"

#pragma clang fp contract(off)

#include "clones.h"

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

// y for `count` rows from row `first`, side by side along the tile: each step's μ₀, rstd and c loaded once for them,
// and y written as a few runs. γ and β per row (`layer norm over=n,c`: a row is a channel of a sample), splat once,
// or per element (PyDLLib's LayerNorm: row after row, normalise_tile loads the constants again for every row, six
// loads to a store; a C replica of its pass at (8, 64, 56, 56) took 0.32 ms, 0.26 with four rows side by side, eight
// no better).
static inline __attribute__((always_inline)) void
affine_rows(const normlab_column_sets *sets, const tile_constants *c, const float *x, long part,
            normlab_column_affine affine, float *y, long first, const long count, const int per_element) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma, *beta = affine.beta;
    long at[SIDE_BY_SIDE], p[SIDE_BY_SIDE];
    vec8 g[SIDE_BY_SIDE], b[SIDE_BY_SIDE];
    for (long k = 0; k < count; k++) {
        at[k] = ROW_AT(first + k);
        p[k] = ROW_INDEX(first + k) * affine.row_stride;
        g[k] = per_element ? splat8(0) : splat8(gamma[p[k]]);
        b[k] = per_element ? splat8(0) : splat8(beta[p[k]]);
    }
    long j = 0;
    for (; j + 8 <= part; j += 8) {
        const vec8 mean = load8(c->mean + j), rstd = load8(c->rstd + j), shift = load8(c->shift + j);
        for (long k = 0; k < count; k++) {
            const vec8 h = (load8(x + at[k] + j) - mean) * rstd + shift;
            if (per_element) store8(y + at[k] + j, load8(gamma + p[k] + j) * h + load8(beta + p[k] + j));
            else store8(y + at[k] + j, g[k] * h + b[k]);
        }
    }
    for (; j < part; j++)
        for (long k = 0; k < count; k++) {
            const float h = (x[at[k] + j] - c->mean[j]) * c->rstd[j] + c->shift[j];
            if (per_element) y[at[k] + j] = gamma[p[k] + j] * h + beta[p[k] + j];
            else y[at[k] + j] = g[k][0] * h + b[k][0];
        }
}

// The tile's rows four at a time (the last group may be fewer). Sixteen rows' streams at once, thirty-two columns a
// step, cost twice the time of the same copy in four (a C benchmark: 0.42 against 0.21 ms a pass at (8, 64, 56, 56)).
// The same operations per element as normalise_tile.
static inline __attribute__((always_inline)) void
normalise_tile_side_by_side(const normlab_column_sets *sets, const tile_constants *c, const float *x, long part,
                            normlab_column_affine affine, float *y, const long rows, const int per_element) {
    long r = 0;
    for (; r + SIDE_BY_SIDE <= rows; r += SIDE_BY_SIDE)
        affine_rows(sets, c, x, part, affine, y, r, SIDE_BY_SIDE, per_element);
    if (r < rows) affine_rows(sets, c, x, part, affine, y, r, rows - r, per_element);
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
        own_constants(&c);
        if (narrowed && narrowed->shift) {  // kept for backward (normlab_narrowed_statistics): made there
            c.mean = narrowed->first_mean;
            c.shift = narrowed->shift;
        }
        int ok;
        long zeros;
        const int row_affine = !xhat && y && gamma && beta && affine.column_stride == 0;
        TILE_STATISTICS(ok, zeros)
        if (!ok) {
            normlab_columns_forward_f32_wide(sets, x, part, affine, xhat, y, mean_out, variance_out, rstd_out,
                                             sum_squares_out, zero_variances, finite);
            if (narrowed) narrow_from_wide(narrowed, 0, mean_out, variance_out, rstd_out, sum_squares_out, part);
            continue;
        }
        *zero_variances += zeros;
        const int only_y = !xhat && y, per_element = affine.column_stride == 1;
        if (only_y && gamma && beta && per_element) normalise_tile_side_by_side(sets, &c, x, part, affine, y, rows, 1);
        else if (row_affine) normalise_tile_side_by_side(sets, &c, x, part, affine, y, rows, 0);
        else if (only_y && !gamma) normalise_tile(sets, &c, x, part, affine, 0, y, 0, 1, 0, 0, 0, rows);
        else normalise_tile(sets, &c, x, part, affine, xhat, y, xhat != 0, y != 0, gamma != 0, beta != 0, per_element, rows);
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
