#ifndef NORMLAB_COLUMN_ROWS_F32_H
#define NORMLAB_COLUMN_ROWS_F32_H

// The float32 general loops' backward steps that take SIDE_BY_SIDE rows along a tile at once (column_tiles_f32.c's
// backward_tiles calls them): a few streams at once instead of every row's, each step's constants loaded once.
#include "column_tiles_f32.h"

#pragma clang fp contract(off)

// KEPT_SUMS_STEP's sums for a whole tile of at most sixteen rows with γ per row or none, four rows side by side along
// the tile rather than all the rows sixteen columns at a time: x and dy are read as eight runs at once, not
// thirty-two streams (a column's sums, in L1 between row groups, still take its rows in order: the first eight into
// sums_dh and sums_dh_d, the rest into `high` and added once, ROWS_SUM2's order). `high` holds 2·TILE floats.
static inline __attribute__((always_inline)) void
kept_sums_rows(const normlab_column_sets *sets, const tile_constants *c, const float *x, const float *dy, long part,
               normlab_column_affine affine, float *sums_dh, float *sums_dh_d, float *high, const long rows,
               const int gamma_kind) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma;
    float *high_dh = high, *high_dh_d = high + TILE;
    for (long first = 0; first < rows; first += SIDE_BY_SIDE) {
        const long count = rows - first < SIDE_BY_SIDE ? rows - first : SIDE_BY_SIDE;
        float *sum_a = first < FOLD ? sums_dh : high_dh, *sum_b = first < FOLD ? sums_dh_d : high_dh_d;
        const int fresh = first == 0 || first == FOLD;
        long at[SIDE_BY_SIDE];
        vec8 g[SIDE_BY_SIDE];
        for (long k = 0; k < count; k++) {
            at[k] = ROW_AT(first + k);
            g[k] = splat8(gamma_kind == GAMMA_PER_ROW ? gamma[ROW_INDEX(first + k) * affine.row_stride] : 1);
        }
        long j = 0;
        for (; j + 8 <= part; j += 8) {
            const vec8 mean = load8(c->mean + j);
            vec8 a = fresh ? splat8(0) : load8(sum_a + j), b = fresh ? splat8(0) : load8(sum_b + j);
            for (long k = 0; k < count; k++) {
                const vec8 d = load8(x + at[k] + j) - mean;
                vec8 dh = load8(dy + at[k] + j);
                if (gamma_kind == GAMMA_PER_ROW) dh = dh * g[k];
                a += dh;
                b += dh * d;
            }
            store8(sum_a + j, a);
            store8(sum_b + j, b);
        }
        for (; j < part; j++) {
            const float mean = c->mean[j];
            float a = fresh ? 0 : sum_a[j], b = fresh ? 0 : sum_b[j];
            for (long k = 0; k < count; k++) {
                const float d = x[at[k] + j] - mean;
                float dh = dy[at[k] + j];
                if (gamma_kind == GAMMA_PER_ROW) dh = dh * g[k][0];
                a += dh;
                b += dh * d;
            }
            sum_a[j] = a;
            sum_b[j] = b;
        }
    }
    if (rows > FOLD) {
        long j = 0;
        for (; j + 8 <= part; j += 8) {
            store8(sums_dh + j, load8(sums_dh + j) + load8(high_dh + j));
            store8(sums_dh_d + j, load8(sums_dh_d + j) + load8(high_dh_d + j));
        }
        for (; j < part; j++) {
            sums_dh[j] = sums_dh[j] + high_dh[j];
            sums_dh_d[j] = sums_dh_d[j] + high_dh_d[j];
        }
    }
}

// dx of a tile with γ and one sum per row (`layer norm over=n,c`), `count` rows from row `first` side by side along
// the tile: each step's five constants are loaded once for them (row after row they were five of seven loads per
// element, the loop's limit), and their sums are chains of additions side by side. Each row's sums take its columns
// in the same order, folded into Float64 every eight steps, and are added to γ's and β's in row order: the same bits
// as GRADIENT_STEP.
static inline __attribute__((always_inline)) void
gradient_rows(const normlab_column_sets *sets, const tile_constants *c, const float *mean_terms,
              const float *projections, const float *x, const float *dy, long part, normlab_column_affine affine,
              float *dx, double *sum_dy, double *sum_dy_xhat, long sums_row_stride, long first, const long count) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma;
    long at[SIDE_BY_SIDE];
    vec8 g[SIDE_BY_SIDE], part_d[SIDE_BY_SIDE], part_dh[SIDE_BY_SIDE];
    d8 sum_d[SIDE_BY_SIDE], sum_dh[SIDE_BY_SIDE];
    for (long k = 0; k < count; k++) {
        at[k] = ROW_AT(first + k);
        g[k] = splat8(gamma[ROW_INDEX(first + k) * affine.row_stride]);
        part_d[k] = part_dh[k] = splat8(0);
        sum_d[k] = sum_dh[k] = wzero8;
    }
    long j = 0, steps = 0;
    for (; j + 8 <= part; j += 8) {
        const vec8 mean = load8(c->mean + j), rstd = load8(c->rstd + j), shift = load8(c->shift + j);
        const vec8 mean_term = load8(mean_terms + j), projection = load8(projections + j);
        for (long k = 0; k < count; k++) {
            const vec8 d = load8(dy + at[k] + j), h = (load8(x + at[k] + j) - mean) * rstd + shift;
            store8(dx + at[k] + j, rstd * ((d * g[k] - mean_term) - h * projection));
            part_d[k] += d;
            part_dh[k] += d * h;
        }
        if (++steps % FOLD == 0)
            for (long k = 0; k < count; k++) {
                sum_d[k] = wadd8(sum_d[k], widen8(part_d[k]));
                sum_dh[k] = wadd8(sum_dh[k], widen8(part_dh[k]));
                part_d[k] = part_dh[k] = splat8(0);
            }
    }
    const long rest = j;
    for (long k = 0; k < count; k++) {
        // The row's last columns one at a time, then its sums, as ROW_SUMS_ADD(1) and ROW_SUMS_END make them.
        float part_d1 = 0, part_dh1 = 0;
        double sum_d1 = 0, sum_dh1 = 0;
        long count1 = 0;
        for (j = rest; j < part; j++) {
            const float d = dy[at[k] + j], h = (x[at[k] + j] - c->mean[j]) * c->rstd[j] + c->shift[j];
            dx[at[k] + j] = c->rstd[j] * ((d * g[k][0] - mean_terms[j]) - h * projections[j]);
            part_d1 += d;
            part_dh1 += d * h;
            if (++count1 % FOLD == 0) { sum_d1 += part_d1; sum_dh1 += part_dh1; part_d1 = part_dh1 = 0; }
        }
        const d8 total_d = wadd8(sum_d[k], widen8(part_d[k])), total_dh = wadd8(sum_dh[k], widen8(part_dh[k]));
        const v4d a = halves8(total_d), b = halves8(total_dh);
        const long s = ROW_INDEX(first + k) * sums_row_stride;
        sum_dy[s] += ((a[0] + a[1]) + (a[2] + a[3])) + (sum_d1 + (double)part_d1);
        sum_dy_xhat[s] += ((b[0] + b[1]) + (b[2] + b[3])) + (sum_dh1 + (double)part_dh1);
    }
}

// GRADIENT_STEP's dx for `count` rows from `first` side by side, with γ per element and dy, dy·x̂ added into float32
// stages per element (per-position sets of many rows with element-wise γ: PyDLLib's LayerNorm): a step's constants
// loaded once for all of them. Each element's operations are GRADIENT_STEP's: the same bits.
// Each step also fetches, for writing, dx of the same columns `count` rows on (the next group's rows; its own in the
// last group): dx goes in short runs, a tile's width each a row apart, and its first write to each line otherwise
// waited for it (PyDLLib's LayerNorm backward, (8, 64, 56, 56): 1.26 -> 1.00 ms; a trial writing dx to an L1 scratch
// instead took 0.70 against 1.31). gradient_rows does not (`norm over=n,c groups=32`, 16 rows with γ per row:
// backward 0.541/0.573 ms with the fetch, 0.506/0.538 without).
static inline __attribute__((always_inline)) void
gradient_rows_staged(const normlab_column_sets *sets, const tile_constants *c, const float *mean_terms,
                     const float *projections, const float *x, const float *dy, long part, normlab_column_affine affine,
                     float *dx, float *stage_dy, float *stage_dy_xhat, long sums_row_stride, long first,
                     const long count) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma;
    long at[SIDE_BY_SIDE], p[SIDE_BY_SIDE], s[SIDE_BY_SIDE], ahead[SIDE_BY_SIDE];
    for (long k = 0; k < count; k++) {
        at[k] = ROW_AT(first + k);
        p[k] = ROW_INDEX(first + k) * affine.row_stride;
        s[k] = ROW_INDEX(first + k) * sums_row_stride;
        ahead[k] = first + k + count < sets->rows ? ROW_AT(first + k + count) : at[k];
    }
    long j = 0;
    for (; j + 8 <= part; j += 8) {
        const vec8 mean = load8(c->mean + j), rstd = load8(c->rstd + j), shift = load8(c->shift + j);
        const vec8 mean_term = load8(mean_terms + j), projection = load8(projections + j);
        for (long k = 0; k < count; k++) {
            const vec8 d = load8(dy + at[k] + j), h = (load8(x + at[k] + j) - mean) * rstd + shift;
            const vec8 dh = d * load8(gamma + p[k] + j);
            store8(dx + at[k] + j, rstd * ((dh - mean_term) - h * projection));
            __builtin_prefetch(dx + ahead[k] + j, 1);
            store8(stage_dy + s[k] + j, load8(stage_dy + s[k] + j) + d);
            store8(stage_dy_xhat + s[k] + j, load8(stage_dy_xhat + s[k] + j) + d * h);
        }
    }
    for (; j < part; j++)
        for (long k = 0; k < count; k++) {
            const float d = dy[at[k] + j], h = (x[at[k] + j] - c->mean[j]) * c->rstd[j] + c->shift[j];
            const float dh = d * gamma[p[k] + j];
            dx[at[k] + j] = c->rstd[j] * ((dh - mean_terms[j]) - h * projections[j]);
            stage_dy[s[k] + j] = stage_dy[s[k] + j] + d;
            stage_dy_xhat[s[k] + j] = stage_dy_xhat[s[k] + j] + d * h;
        }
}

// Sets of two with γ and one sum per row (`layer groupnorm G reduce=channels` where a group holds two channels): the
// range test of the pair's dx̂ gap, dx, and both rows' sums in one pass along the tile, where PAIR_RANGE_STEP,
// GRADIENT_PAIR_STEP and a PAIR_ROW_SUMS_STEP pass per row read the tile four times. Each row's sums take its columns
// in the same order, folded into Float64 every eight steps, and are added to γ's and β's row 0 first, as ROW_SUMS_END
// adds them: the same bits. Returns 0, having added nothing, when a column is out of range (the caller then runs the
// tile in Float64 lanes, which writes every dx again).
static inline __attribute__((always_inline)) int
pair_rows(const normlab_column_sets *sets, const tile_constants *c, const float *x, const float *dy, long part,
          normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat, long sums_row_stride) {
    const long stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float eps = (float)sets->eps;
    const long at0 = ROW_AT(0), at1 = ROW_AT(1);
    const float *gamma = affine.gamma;
    const float g0 = gamma[ROW_INDEX(0) * affine.row_stride], g1 = gamma[ROW_INDEX(1) * affine.row_stride];
    vec8 part_d0 = splat8(0), part_dh0 = splat8(0), part_d1 = splat8(0), part_dh1 = splat8(0);
    d8 sum_d0 = wzero8, sum_dh0 = wzero8, sum_d1 = wzero8, sum_dh1 = wzero8;
    mask8 ok8 = true8;
    long j = 0, steps = 0;
    for (; j + 8 <= part; j += 8) {
        const vec8 mean = load8(c->mean + j), rstd = load8(c->rstd + j), shift = load8(c->shift + j);
        const vec8 d0 = load8(dy + at0 + j), h0 = (load8(x + at0 + j) - mean) * rstd + shift;
        const vec8 d1 = load8(dy + at1 + j), h1 = (load8(x + at1 + j) - mean) * rstd + shift;
        const vec8 dh0 = d0 * splat8(g0), dh1 = d1 * splat8(g1), gap = dh0 - dh1;
        ok8 &= (gap > -0x1p100f) & (gap < 0x1p100f);
        const vec8 k = ((0.5f * eps * rstd) * rstd) * rstd;
        store8(dx + at0 + j, (dh0 - dh1) * k);
        store8(dx + at1 + j, (dh1 - dh0) * k);
        part_d0 += d0;
        part_dh0 += d0 * h0;
        part_d1 += d1;
        part_dh1 += d1 * h1;
        if (++steps % FOLD == 0) {
            sum_d0 = wadd8(sum_d0, widen8(part_d0));
            sum_dh0 = wadd8(sum_dh0, widen8(part_dh0));
            sum_d1 = wadd8(sum_d1, widen8(part_d1));
            sum_dh1 = wadd8(sum_dh1, widen8(part_dh1));
            part_d0 = part_dh0 = part_d1 = part_dh1 = splat8(0);
        }
    }
    // The last columns one at a time, as ROW_SUMS_ADD(1) sums them.
    float one_d0 = 0, one_dh0 = 0, one_d1 = 0, one_dh1 = 0;
    double wide_d0 = 0, wide_dh0 = 0, wide_d1 = 0, wide_dh1 = 0;
    int ok1 = 1;
    long ones = 0;
    for (; j < part; j++) {
        const float mean = c->mean[j], rstd = c->rstd[j], shift = c->shift[j];
        const float d0 = dy[at0 + j], h0 = (x[at0 + j] - mean) * rstd + shift;
        const float d1 = dy[at1 + j], h1 = (x[at1 + j] - mean) * rstd + shift;
        const float dh0 = d0 * g0, dh1 = d1 * g1, gap = dh0 - dh1;
        ok1 &= (gap > -0x1p100f) & (gap < 0x1p100f);
        const float k = ((0.5f * eps * rstd) * rstd) * rstd;
        dx[at0 + j] = (dh0 - dh1) * k;
        dx[at1 + j] = (dh1 - dh0) * k;
        one_d0 += d0;
        one_dh0 += d0 * h0;
        one_d1 += d1;
        one_dh1 += d1 * h1;
        if (++ones % FOLD == 0) {
            wide_d0 += (double)one_d0, wide_dh0 += (double)one_dh0, wide_d1 += (double)one_d1, wide_dh1 += (double)one_dh1;
            one_d0 = one_dh0 = one_d1 = one_dh1 = 0;
        }
    }
    if (!(all8(ok8) && ok1)) return 0;
    sum_d0 = wadd8(sum_d0, widen8(part_d0));
    sum_dh0 = wadd8(sum_dh0, widen8(part_dh0));
    sum_d1 = wadd8(sum_d1, widen8(part_d1));
    sum_dh1 = wadd8(sum_dh1, widen8(part_dh1));
    const v4d a0 = halves8(sum_d0), b0 = halves8(sum_dh0);
    const v4d a1 = halves8(sum_d1), b1 = halves8(sum_dh1);
    const long s0 = ROW_INDEX(0) * sums_row_stride, s1 = ROW_INDEX(1) * sums_row_stride;
    sum_dy[s0] += ((a0[0] + a0[1]) + (a0[2] + a0[3])) + (wide_d0 + (double)one_d0);
    sum_dy_xhat[s0] += ((b0[0] + b0[1]) + (b0[2] + b0[3])) + (wide_dh0 + (double)one_dh0);
    sum_dy[s1] += ((a1[0] + a1[1]) + (a1[2] + a1[3])) + (wide_d1 + (double)one_d1);
    sum_dy_xhat[s1] += ((b1[0] + b1[1]) + (b1[2] + b1[3])) + (wide_dh1 + (double)one_dh1);
    return 1;
}

#endif
