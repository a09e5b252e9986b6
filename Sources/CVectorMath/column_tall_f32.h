#ifndef NORMLAB_COLUMN_TALL_F32_H
#define NORMLAB_COLUMN_TALL_F32_H

// Tiles of more than seventeen rows and bigger than half of L2 (BatchNorm on (N, C) with thousands of samples) make
// their column sums row group by row group along the tile, not column block by column block down every row: a column
// block down 4096 rows of 3 KB touched a line of each, a page apart, which no prefetcher follows. Each column's sum
// takes the same terms in the same order as ROWS_SUM / ROWS_SUM2 / ROWS_SUM4's wide path (column_lanes_f32.h): eight
// terms in a float32 part, each part added into a Float64 sum, the rest (fewer than eight, or none) added last and the
// total narrowed — kept per column in a strip's arrays between row groups. The same bits.
#include "column_lanes_f32.h"

#pragma clang fp contract(off)

// Columns whose Float64 sums the strips keep at once (four sums: 16 KB).
enum { TALL_STRIP = 512, TALL_SIDE = 4 };

// Tiles that go row group by row group: those bigger than half of L2. A smaller one stays in L2 while its column
// blocks go down its rows, and PyDLLib's LayerNorm (64 rows of 512 columns then, 128 KB; of at most 400 since session
// 28) was slower by rows (REPL time backward at (8, 64, 56, 56) 1.01 -> 1.15 ms).
#define TALL(rows, columns) ((rows) * (columns) > 131072)

// Σ(x − x₀) over rows 1… (ROWS_SUM with first = 1) into sum_out.
static inline __attribute__((always_inline)) void
tall_first_sums(const normlab_column_sets *sets, const float *x, long part, float *sum_out) {
    const long rows = sets->rows, stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets;
    const float *x0 = x + ROW_AT(0);
    double wide[TALL_STRIP];
    for (long s = 0; s < part; s += TALL_STRIP) {
        const long width = part - s < TALL_STRIP ? part - s : TALL_STRIP;
        for (long j = 0; j < width; j++) wide[j] = 0;
        long g = 1;
        for (; g + FOLD <= rows; g += FOLD) {
            long j = s;
            for (; j + 8 <= s + width; j += 8) {
                const v8f first = load8(x0 + j);
                v8f p = splat8(0);
                for (long r = g; r < g + FOLD; r++) p += load8(x + ROW_AT(r) + j) - first;
                wstore8(wide + j - s, wadd8(wload8(wide + j - s), widen8(p)));
            }
            for (; j < s + width; j++) {
                float p = 0;
                for (long r = g; r < g + FOLD; r++) p += x[ROW_AT(r) + j] - x0[j];
                wide[j - s] = wide[j - s] + (double)p;
            }
        }
        long j = s;
        for (; j + 8 <= s + width; j += 8) {
            const v8f first = load8(x0 + j);
            v8f p = splat8(0);
            for (long r = g; r < rows; r++) p += load8(x + ROW_AT(r) + j) - first;
            store8(sum_out + j, narrow8(wadd8(wload8(wide + j - s), widen8(p))));
        }
        for (; j < s + width; j++) {
            float p = 0;
            for (long r = g; r < rows; r++) p += x[ROW_AT(r) + j] - x0[j];
            sum_out[j] = (float)(wide[j - s] + (double)p);
        }
    }
}

// One row's terms at the columns at j: d = x − μ₀ (Σd, Σd² with `deviations`), dx̂ = dy·γ (Σdx̂, Σdx̂·d with
// `gradients`), as GRADIENT_SUMS_ROW and ROWS_SUM4 / ROWS_SUM2 make them.
#define TALL_TERMS(W, r)                                                                                              \
    {                                                                                                                 \
        const long row_ = ROW_AT(r);                                                                                  \
        const vec##W d = load##W(x + row_ + j) - load##W(mean + j);                                                   \
        if (deviations) { pa += d; pb += d * d; }                                                                     \
        if (gradients) {                                                                                              \
            vec##W dh = load##W(dy + row_ + j);                                                                       \
            const long row_p = ROW_INDEX(r) * affine.row_stride;                                                      \
            if (gamma_kind == GAMMA_PER_ELEMENT) dh = dh * load##W(gamma + row_p + j);                                \
            else if (gamma_kind == GAMMA_PER_ROW) dh = dh * splat##W(gamma[row_p]);                                   \
            pc += dh; pd += dh * d;                                                                                   \
        }                                                                                                             \
    }

// Two parts added into their Float64 sums at the strip's column w, or (last) added and narrowed into the outputs at j.
#define TALL_ADD(W, part_x, part_y, wide_x, wide_y, out_x, out_y, last)                                               \
    {                                                                                                                 \
        const wide##W x_ = wadd##W(wload##W(wide_x + w), widen##W(part_x));                                           \
        const wide##W y_ = wadd##W(wload##W(wide_y + w), widen##W(part_y));                                           \
        if (last) { store##W(out_x + j, narrow##W(x_)); store##W(out_y + j, narrow##W(y_)); }                         \
        else { wstore##W(wide_x + w, x_); wstore##W(wide_y + w, y_); }                                                \
    }

// A row group's parts (rows g… to `end`) of the columns at j, added into the strip's Float64 sums, or (last) added
// and narrowed into the outputs. The group's rows go four at a time along the strip (eight rows of x and dy were
// sixteen streams, slower on two threads' tiles of 128 columns): its float32 parts wait in the strip's arrays between.
#define TALL_GROUP(W, start, end, last)                                                                               \
    for (long h = g; h < (end) || ((last) && h == g); h += TALL_SIDE) { /* the last group may have no rows */         \
        const long h_end = (end) - h < TALL_SIDE ? (end) : h + TALL_SIDE;                                             \
        for (j = (start); j + W <= s + width; j += W) {                                                               \
            const long w = j - s;                                                                                     \
            vec##W pa = splat##W(0), pb = splat##W(0), pc = splat##W(0), pd = splat##W(0);                            \
            if (h > g) {                                                                                              \
                pa = load##W(part_a + w); pb = load##W(part_b + w);                                                   \
                pc = load##W(part_c + w); pd = load##W(part_d + w);                                                   \
            }                                                                                                         \
            for (long r = h; r < h_end; r++) TALL_TERMS(W, r)                                                         \
            if (h_end < (end)) {                                                                                      \
                store##W(part_a + w, pa); store##W(part_b + w, pb);                                                   \
                store##W(part_c + w, pc); store##W(part_d + w, pd);                                                   \
                continue;                                                                                             \
            }                                                                                                         \
            if (deviations) TALL_ADD(W, pa, pb, wide_a, wide_b, deviations_out, squares_out, last)                    \
            if (gradients) TALL_ADD(W, pc, pd, wide_c, wide_d, dh_out, dh_d_out, last)                                \
        }                                                                                                             \
    }

// Σd and Σd² (`deviations`) and Σdx̂ and Σdx̂·d (`gradients`) over every row (ROWS_SUM2 / ROWS_SUM4, first = 0), d =
// x − mean[j]; γ as gamma_kind says (TIMES_GAMMA).
static inline __attribute__((always_inline)) void
tall_deviation_sums(const normlab_column_sets *sets, const float *x, const float *dy, long part, const float *mean,
                    normlab_column_affine affine, const int deviations, const int gradients, const int gamma_kind,
                    float *deviations_out, float *squares_out, float *dh_out, float *dh_d_out) {
    const long rows = sets->rows, stride = sets->row_stride;
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;
    const float *gamma = affine.gamma;
    double wide_a[TALL_STRIP], wide_b[TALL_STRIP], wide_c[TALL_STRIP], wide_d[TALL_STRIP];
    float part_a[TALL_STRIP], part_b[TALL_STRIP], part_c[TALL_STRIP], part_d[TALL_STRIP];
    for (long s = 0; s < part; s += TALL_STRIP) {
        const long width = part - s < TALL_STRIP ? part - s : TALL_STRIP;
        for (long j = 0; j < width; j++) wide_a[j] = wide_b[j] = wide_c[j] = wide_d[j] = 0;
        long g = 0, j;
        const long tail = s + (width & ~7L);
        for (; g + FOLD <= rows; g += FOLD) {
            TALL_GROUP(8, s, g + FOLD, 0)
            TALL_GROUP(1, tail, g + FOLD, 0)
        }
        TALL_GROUP(8, s, rows, 1)
        TALL_GROUP(1, tail, rows, 1)
    }
}

#endif
