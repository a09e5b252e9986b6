#ifndef NORMLAB_COLUMN_TILES_F32_H
#define NORMLAB_COLUMN_TILES_F32_H

// What the float32 column kernels' general loops share, forward (column_tiles_forward_f32.c) and backward
// (column_tiles_f32.c): a tile's constants and its statistics step. See column_sets_f32.c for the arithmetic.
#include "column_lanes_f32.h"

#pragma clang fp contract(off)

enum { AHEAD = 128 };  // columns: half a KB of each row

// Rows the general loops take side by side along a tile, where they go row after row (y and dx with γ per row, the
// sums from kept constants): one step's constants loaded for all of them, and a few streams at once rather than
// every row's.
enum { SIDE_BY_SIDE = 4 };

// μ₀, rstd and c of a tile's columns, as x̂ is made from them: in the struct's own arrays, or where a caller keeps
// them (backward: forward's kept constants; forward: the narrowed statistics' μ₀ and c), which saves copying them.
typedef struct {
    float *mean, *rstd, *shift;
    float own_mean[TILE], own_rstd[TILE], own_shift[TILE];
} tile_constants;

static inline void own_constants(tile_constants *c) {
    c->mean = c->own_mean;
    c->rstd = c->own_rstd;
    c->shift = c->own_shift;
}

// How backward reads γ and where it adds dy and dy·x̂ (γ's and β's sums): known when a call's layout is (the common
// ones get loops without the tests), or read from the call (ANY).
enum { ANY = -1, GAMMA_NONE = 0, GAMMA_PER_ROW = 1, GAMMA_PER_ELEMENT = 2, SUMS_NONE = 0, SUMS_PER_ELEMENT = 1,
       SUMS_PER_ROW = 2 };

#include "column_tall_f32.h"

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

// The statistics of the columns at j into c (and, where asked, μ, σ², rstd, Σ(x − μ)² in Float64, or with `narrowed`
// μ, σ², rstd and the unbiased σ² in float32); clears ok's lanes for numbers out of range, counts zero variances. Each row's x AHEAD columns on is fetched on the way: a tile's rows
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
        STATISTICS_FINISH(W)                                                                                          \
    }

// STATISTICS_STEP for a tall tile whose sums tall_first_sums and tall_deviation_sums made (column_tall_f32.h): μ₀ in
// c.mean, Σd in c.shift and Σd² in c.rstd until this step writes their own values.
#define TALL_STATISTICS_STEP(W)                                                                                       \
    {                                                                                                                 \
        vec##W mean = centre ? load##W(c.mean + j) : splat##W(0), offset = splat##W(0);                              \
        vec##W deviations = load##W(c.shift + j), squares = load##W(c.rstd + j);                                      \
        if (centre) offset = DIVIDE(deviations, m);                                                                   \
        if (centre) squares = max0_##W(squares - deviations * offset);                                                \
        STATISTICS_FINISH(W)                                                                                          \
    }

// The rest of a column's statistics from μ₀, μ − μ₀ (offset) and Σ(x − μ)² (squares).
#define STATISTICS_FINISH(W)                                                                                          \
    {                                                                                                                 \
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

// rstd = 1/√(σ² + eps) and the shift −(μ − μ₀)·rstd of the W columns at `at` of the tile constants `constants`
// (a pointer), made from what they hold until then (σ² + eps and μ − μ₀).
#define RSTD_AT(W, constants, at)                                                                                     \
    {                                                                                                                 \
        vec##W rstd_ = 1.0f / __builtin_elementwise_sqrt(load##W((constants)->rstd + (at)));                          \
        store##W((constants)->rstd + (at), rstd_);                                                                    \
        store##W((constants)->shift + (at), -load##W((constants)->shift + (at)) * rstd_);                             \
        if (narrowed) store##W(narrowed->rstd + (at), rstd_);                                                         \
        else if (rstd_out) wstore##W(rstd_out + (at), widen##W(rstd_));                                               \
    }

// A tile's statistics; 0 when a column's numbers are out of range (the tile then runs in Float64 lanes).
// One square root and division per column, run back to back for the whole tile so they pipeline (fused into the
// step above, each waited for the last: a third of forward's time).
#define TILE_STATISTICS(ok, zeros)                                                                                    \
    {                                                                                                                 \
        mask16 ok16 = true16, zeros16 = {0};                                                                          \
        mask8 ok8 = true8, zeros8 = {0, 0, 0, 0, 0, 0, 0, 0};                                                         \
        mask1 ok1 = true1, zeros1 = 0;                                                                                \
        long j = 0;                                                                                                   \
        if (TALL(rows, part) && rows > 2 * FOLD + 1) { /* each sum, Σ(x − x₀) too, on ROWS_SUM's wide path */     \
            if (centre) {                                                                                             \
                tall_first_sums(sets, x, part, c.rstd);                                                               \
                const float *first_ = x + ROW_AT(0);                                                                  \
                for (; j + 8 <= part; j += 8) store8(c.mean + j, load8(first_ + j) + DIVIDE(load8(c.rstd + j), m));   \
                for (; j < part; j++) c.mean[j] = first_[j] + DIVIDE(c.rstd[j], m);                                   \
            } else {                                                                                                  \
                for (; j < part; j++) c.mean[j] = 0;                                                                  \
            }                                                                                                         \
            tall_deviation_sums(sets, x, dy, part, c.mean, affine, 1, gradient_sums, gamma_kind, c.shift, c.rstd,     \
                                sums_dh, sums_dh_d);                                                                  \
            for (j = 0; j + 8 <= part; j += 8) TALL_STATISTICS_STEP(8)                                                \
            for (; j < part; j++) TALL_STATISTICS_STEP(1)                                                             \
        } else {                                                                                                      \
            for (; j + 16 <= part; j += 16) STATISTICS_STEP(16)                                                       \
            for (; j + 8 <= part; j += 8) STATISTICS_STEP(8)                                                          \
            for (; j < part; j++) STATISTICS_STEP(1)                                                                  \
        }                                                                                                             \
        ok = all16(ok16) && all8(ok8) && all1(ok1);                                                                   \
        zeros8 += __builtin_shufflevector(zeros16, zeros16, 0, 1, 2, 3, 4, 5, 6, 7) +                                 \
                  __builtin_shufflevector(zeros16, zeros16, 8, 9, 10, 11, 12, 13, 14, 15);                            \
        zeros = (long)(((zeros8[0] + zeros8[1]) + (zeros8[2] + zeros8[3])) + ((zeros8[4] + zeros8[5]) + (zeros8[6] + zeros8[7]))) - zeros1; \
        if (ok) {                                                                                                     \
            for (j = 0; j + 8 <= part; j += 8) RSTD_AT(8, &c, j)                                                      \
            for (; j < part; j++) RSTD_AT(1, &c, j)                                                                   \
        }                                                                                                             \
    }

#endif
