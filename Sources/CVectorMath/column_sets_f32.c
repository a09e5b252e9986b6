#include "column_lanes_f32.h"

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
#include "column_single_f32.h"

// Sets of at most eight rows, eight columns at a time (forward: sixteen, then eight), each block once from memory to
// registers: its rows are loaded once, and statistics, x̂ and y (forward) or the two sums and dx (backward) are made
// from the registers — the same operations in the same order as the general loops (column_tiles_*f32.c), so the same
// bits; except backward with γ shared by a column's rows (BatchNorm per element), whose dx takes γ into its scale
// (BACKWARD_BLOCK). A block out of range runs in the Float64 lanes alone (its columns). Columns past the last whole
// block: forward's take the general loops, backward's the block's code one lane wide (so a column's dx is the same
// wherever its tile ends).
#define BLOCK_STATISTICS(W)                                                                                           \
    vec##W v[8], d[8];                                                                                                \
    for (long r = 0; r < rows; r++) v[r] = load##W(x + ROW_AT(r) + j);                                                \
    vec##W mean = splat##W(0), deviations = splat##W(0), squares = splat##W(0), offset = splat##W(0);                 \
    mask##W ok;                                                                                                       \
    if (rows == 2 && centre) {                                                                                        \
        PAIR_STATISTICS(W, v[0], v[1], d[0], d[1])                                                                    \
    } else if (rows == 1 && centre) {                                                                                 \
        /* A set of one element: the steps below but Σd² − Σd·(Σd/m), +0 wherever x is finite (d is ±0, Σd +0) and */ \
        /* not needed elsewhere (μ is not finite: out of range). μ₀, d and Σd as there, for their zeros' signs.      */ \
        mean = v[0] + DIVIDE(splat##W(0), m);                                                                         \
        d[0] = v[0] - mean;                                                                                           \
        deviations += d[0];                                                                                           \
        offset = DIVIDE(deviations, m);                                                                               \
    } else {                                                                                                          \
        if (centre) {                                                                                                 \
            vec##W sum = splat##W(0);                                                                                 \
            for (long r = 1; r < rows; r++) sum += v[r] - v[0];                                                       \
            mean = v[0] + DIVIDE(sum, m);                                                                             \
        }                                                                                                             \
        for (long r = 0; r < rows; r++) {                                                                             \
            d[r] = v[r] - mean;                                                                                       \
            deviations += d[r];                                                                                       \
            squares += d[r] * d[r];                                                                                   \
        }                                                                                                             \
        if (centre) offset = DIVIDE(deviations, m);                                                                   \
        if (centre) squares = max0_##W(squares - deviations * offset);                                                \
    }                                                                                                                 \
    vec##W variance = DIVIDE(squares, divisor), shifted = variance + eps;                                             \
    ok = (shifted >= 0x1p-120f) & (shifted <= 0x1p120f);                                                              \
    /* (one element: c = (x − μ)/1 is finite where μ = x + 0 is) */                                                  \
    if (rows == 1 && centre) ok &= mean - mean == 0;                                                                  \
    else if (!(rows == 2 && centre)) ok &= (mean - mean == 0) & (offset - offset == 0);                               \
    /* A set of one element (PyDLLib's InstanceNorm): σ² is 0 wherever the block is in range, so σ² + eps is 0 + eps */ \
    /* in every lane, and its square root and division are made once per call. */                                    \
    vec##W rstd = rows == 1 && centre ? splat##W(single_rstd) : 1.0f / __builtin_elementwise_sqrt(shifted);           \
    vec##W shift = -offset * rstd;

// One block of W columns forward (forward_blocks): sixteen, then eight. Sixteen columns use every byte of the 64-byte
// lines they read and write at once; in blocks of eight, BatchNorm per element's rows — a sample apart, a multiple of
// 4 KB — fall in one L1 set, and with y the same distance from x its eight lines evict x's before the next block has
// read their other half (a C benchmark: 1.12 → 0.76 ms with x and y so placed, as fresh arrays are; 0.82 → 0.76 ms
// otherwise). Lanes are independent: the same bits in a block of either width.
#define FORWARD_BLOCK(W)                                                                                              \
    {                                                                                                                 \
        BLOCK_STATISTICS(W)                                                                                           \
        if (!all##W(ok)) {                                                                                            \
            normlab_column_affine shifted_affine = affine;                                                            \
            if (gamma) shifted_affine.gamma = gamma + j * per_element;                                                \
            if (beta) shifted_affine.beta = beta + j * per_element;                                                   \
            normlab_columns_forward_f32_wide(sets, x + j, W, shifted_affine, xhat ? xhat + j : 0, y ? y + j : 0,      \
                mean_out ? mean_out + j : 0, variance_out ? variance_out + j : 0, rstd_out ? rstd_out + j : 0,        \
                sum_squares_out ? sum_squares_out + j : 0, zero_variances, finite);                                   \
            if (narrowed) narrow_from_wide(narrowed, j, mean_out, variance_out, rstd_out, sum_squares_out, W);        \
            j += W;                                                                                                   \
            continue;                                                                                                 \
        }                                                                                                             \
        zeros##W -= variance == 0;                                                                                    \
        if (narrowed) {                                                                                               \
            NARROWED_MOMENTS(W, narrowed, mean, offset, variance, squares)                                            \
            store##W(narrowed->rstd + j, rstd);                                                                       \
            if (narrowed->shift) { store##W(narrowed->first_mean + j, mean); store##W(narrowed->shift + j, shift); }  \
        } else {                                                                                                      \
            if (mean_out) wstore##W(mean_out + j, wadd##W(widen##W(mean), widen##W(offset)));                         \
            if (variance_out) wstore##W(variance_out + j, widen##W(variance));                                        \
            if (rstd_out) wstore##W(rstd_out + j, widen##W(rstd));                                                    \
            if (sum_squares_out) wstore##W(sum_squares_out + j, widen##W(squares));                                   \
        }                                                                                                             \
        /* γ, β the same for every row (BatchNorm per element): read once for the block, before y's stores. */       \
        vec##W shared_g = splat##W(0), shared_b = splat##W(0);                                                        \
        if (shared_affine) shared_g = load##W(gamma + j), shared_b = load##W(beta + j);                               \
        for (long r = 0; r < rows; r++) {                                                                             \
            const long at = ROW_AT(r) + j;                                                                            \
            vec##W h = d[r] * rstd + shift;                                                                           \
            if (xhat) store##W(xhat + at, h);                                                                         \
            if (!element_affine && !y) continue;                                                                      \
            if (shared_affine) {                                                                                      \
                store##W(y + at, shared_g * h + shared_b);                                                            \
            } else if (!has_gamma) {                                                                                  \
                store##W(y + at, h);                                                                                  \
            } else {                                                                                                  \
                const long p = ROW_INDEX(r) * affine.row_stride + j * per_element;                                    \
                vec##W g = per_element ? load##W(gamma + p) : splat##W(gamma[p]);                                     \
                vec##W b = !has_beta ? splat##W(0) : per_element ? load##W(beta + p) : splat##W(beta[p]);             \
                store##W(y + at, g * h + b);                                                                          \
            }                                                                                                         \
        }                                                                                                             \
        j += W;                                                                                                       \
    }

static inline __attribute__((always_inline)) void
forward_blocks(const normlab_column_sets *sets, const float *x, long width, normlab_column_affine affine,
               float *xhat, float *y, double *mean_out, double *variance_out, double *rstd_out,
               double *sum_squares_out, long *zero_variances, int *finite,
               const normlab_narrowed_statistics *narrowed, const long fixed_rows, const unsigned known) {
    CONSTANTS
    const float *gamma = affine.gamma, *beta = affine.beta;
    const int element_affine = known & KNOWN_ELEMENT_AFFINE;
    const long per_element = element_affine ? 1 : affine.column_stride;
    const int has_gamma = element_affine || gamma, has_beta = element_affine || beta;
    const int shared_affine = element_affine && (known & KNOWN_SHARED_AFFINE);
    if (element_affine) xhat = 0;
    v16i zeros16 = {0};
    v8i zeros8 = {0, 0, 0, 0, 0, 0, 0, 0};
    long j = 0;
    SINGLE_FORWARD_LOOP
    while (j + 16 <= width) FORWARD_BLOCK(16)
    while (j + 8 <= width) FORWARD_BLOCK(8)  /* at most once */
    v8i zeros = zeros8 + __builtin_shufflevector(zeros16, zeros16, 0, 1, 2, 3, 4, 5, 6, 7) +
                __builtin_shufflevector(zeros16, zeros16, 8, 9, 10, 11, 12, 13, 14, 15);
    *zero_variances += ((zeros[0] + zeros[1]) + (zeros[2] + zeros[3])) + ((zeros[4] + zeros[5]) + (zeros[6] + zeros[7]));
    if (j < width) {
        normlab_column_affine rest = affine;
        if (gamma) rest.gamma = gamma + j * per_element;
        if (beta) rest.beta = beta + j * per_element;
        const normlab_narrowed_statistics narrowed_rest =
            narrowed ? narrowed_from(narrowed, j) : (normlab_narrowed_statistics){0};
        normlab_columns_f32_forward_tiles(sets, x + j, width - j, rest, xhat ? xhat + j : 0, y ? y + j : 0,
                                          mean_out ? mean_out + j : 0, variance_out ? variance_out + j : 0,
                                          rstd_out ? rstd_out + j : 0, sum_squares_out ? sum_squares_out + j : 0,
                                          zero_variances, finite, narrowed ? &narrowed_rest : 0);
    }
}

// What a call's layout lets the block loops know (KNOWN_*): plain rows, centred sets, γ per element, and whether
// every row shares it. Forward also needs y alone with β (its loops for those write y = γ·x̂ + β, nothing else).
static inline unsigned known_layout(const normlab_column_sets *sets, normlab_column_affine affine) {
    if (sets->row_offsets || sets->row_index || !sets->centre || !affine.gamma || affine.column_stride != 1) return 0;
    if (affine.row_stride != 0) return KNOWN_COMMON;
    const int powers = normlab_power_of_two(sets->m) && normlab_power_of_two(sets->divisor);
    return KNOWN_COMMON | KNOWN_SHARED_AFFINE | (powers ? KNOWN_POWERS_OF_TWO : 0);
}

// call(…, known) with `known` as a constant, so each mask gets loops of its own.
#define BY_KNOWN(known, call, ...)                                                                                    \
    switch (known) {                                                                                                  \
    case KNOWN_COMMON | KNOWN_SHARED_AFFINE: call(__VA_ARGS__, KNOWN_COMMON | KNOWN_SHARED_AFFINE); break;            \
    case KNOWN_COMMON | KNOWN_SHARED_AFFINE | KNOWN_POWERS_OF_TWO:                                                    \
        call(__VA_ARGS__, KNOWN_COMMON | KNOWN_SHARED_AFFINE | KNOWN_POWERS_OF_TWO); break;                           \
    case KNOWN_COMMON: call(__VA_ARGS__, KNOWN_COMMON); break;                                                        \
    default: call(__VA_ARGS__, 0); break;                                                                             \
    }

static inline __attribute__((always_inline)) void
forward_any(const normlab_column_sets *sets, const float *x, long width, normlab_column_affine affine, float *xhat,
            float *y, double *mean_out, double *variance_out, double *rstd_out, double *sum_squares_out,
            long *zero_variances, int *finite, const normlab_narrowed_statistics *narrowed, const long fixed_rows) {
    if (fixed_rows > 8) {
        normlab_columns_f32_forward_tiles(sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out,
                                          sum_squares_out, zero_variances, finite, narrowed);
        return;
    }
    const unsigned known = !xhat && y && affine.beta ? known_layout(sets, affine) : 0;
    BY_KNOWN(known, forward_blocks, sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
             zero_variances, finite, narrowed, fixed_rows)
}

// A few small set sizes get loops of a known length (unrolled, no per-row tests); others the general loops.
#define BY_ROWS(call, ...)                                                                                            \
    switch (sets->rows) {                                                                                             \
    case 1: call(__VA_ARGS__, 1); break; /* sets of one element: PyDLLib's InstanceNorm */                            \
    case 2: call(__VA_ARGS__, 2); break;                                                                              \
    case 4: call(__VA_ARGS__, 4); break;                                                                              \
    case 8: call(__VA_ARGS__, 8); break;                                                                              \
    default: call(__VA_ARGS__, sets->rows); break;                                                                    \
    }

NORMLAB_CLONES
void normlab_columns_forward_f32(const normlab_column_sets *sets, const float *x, long width,
                                 normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                 double *variance_out, double *rstd_out, double *sum_squares_out,
                                 long *zero_variances, int *finite, const normlab_narrowed_statistics *narrowed) {
    BY_ROWS(forward_any, sets, x, width, affine, xhat, y, mean_out, variance_out, rstd_out, sum_squares_out,
            zero_variances, finite, narrowed)
}

// Sums a block or tail made in Float64 (local: eight columns per sums row, rows by their index) added into the
// float32 arrays: one sums row per row index — BatchNorm with grouped channels has K of them for its N·K rows (the
// float32 arrays hold K rows), BatchNorm per element one (its rows are a column's samples).
static inline void add_local_sums(const normlab_column_sets *sets, float *sum_dy, float *sum_dy_xhat,
                                  const double *local_dy, const double *local_dy_xhat, long columns,
                                  long sums_row_stride) {
    long local_rows = sums_row_stride ? sets->rows : 1;
    if (sums_row_stride && sets->row_index) {
        local_rows = 0;
        for (long r = 0; r < sets->rows; r++)
            if (sets->row_index[r] >= local_rows) local_rows = sets->row_index[r] + 1;
    }
    for (long r = 0; r < local_rows; r++) {
        const long s = r * sums_row_stride;
        for (long c = 0; c < columns; c++) {
            sum_dy[s + c] += (float)local_dy[r * 8 + c];
            sum_dy_xhat[s + c] += (float)local_dy_xhat[r * 8 + c];
        }
    }
}

// One block of W columns backward (backward_blocks): eight, or one for the columns after the last block of eight.
// γ shared by every row (BatchNorm per element): Σdx̂ = γ·Σdy and Σdx̂·x̂ = γ·Σdy·x̂, the sums γ's and β's gradients
// take anyway, so dx = (rstd·γ)·((dy − Σdy/m) − x̂·Σdy·x̂/divisor) needs neither dx̂ nor sums of its own (a fifth
// of the block's operations).
#define BACKWARD_BLOCK(W)                                                                                             \
    {                                                                                                                 \
        if (single_sets && SINGLE_BACKWARD(W)) continue;                                                              \
        BLOCK_STATISTICS(W)                                                                                           \
        vec##W h[8], dh[8], sum = splat##W(0), sum_products = splat##W(0);                                            \
        const vec##W shared_g = shared_affine ? load##W(gamma + j) : splat##W(0);                                     \
        const int shared_terms = shared_affine && !(rows == 2 && centre);                                             \
        for (long r = 0; r < rows; r++) {                                                                             \
            h[r] = d[r] * rstd + shift;                                                                               \
            v[r] = load##W(dy + ROW_AT(r) + j); /* dy from here on */                                                 \
            dh[r] = v[r];                                                                                             \
            if (shared_terms) {                                                                                       \
            } else if (shared_affine) {                                                                               \
                dh[r] = v[r] * shared_g;                                                                              \
            } else if (has_gamma) {                                                                                   \
                const long p = ROW_INDEX(r) * affine.row_stride + j * per_element;                                    \
                dh[r] = v[r] * (per_element ? load##W(gamma + p) : splat##W(gamma[p]));                               \
            }                                                                                                         \
        }                                                                                                             \
        vec##W mean_term = splat##W(0), projection = splat##W(0), scale = rstd;                                       \
        if (rows == 2 && centre) { /* as PAIR_RANGE_STEP (column_tiles_f32.c) */                                      \
            vec##W gap = dh[0] - dh[1];                                                                               \
            ok &= (gap > -0x1p100f) & (gap < 0x1p100f);                                                               \
        } else {                                                                                                      \
            /* dh is dy for shared terms: Σdy, Σdy·x̂ (γ's and β's sums too); dx's scale is then rstd·γ. */           \
            for (long r = 0; r < rows; r++) {                                                                         \
                sum += dh[r];                                                                                         \
                sum_products += dh[r] * h[r];                                                                         \
            }                                                                                                         \
            mean_term = centre ? DIVIDE(sum, m) : splat##W(0), projection = DIVIDE(sum_products, divisor);            \
            if (shared_terms) scale = rstd * shared_g;                                                                \
            ok &= (mean_term > -0x1p100f) & (mean_term < 0x1p100f) & (projection > -0x1p100f) &                       \
                  (projection < 0x1p100f) & (scale > -0x1p100f) & (scale < 0x1p100f);                                 \
        }                                                                                                             \
        if (!all##W(ok)) {                                                                                            \
            normlab_column_affine shifted_affine = affine;                                                            \
            if (gamma) shifted_affine.gamma = gamma + j * per_element;                                                \
            if (float_sums || narrowed_sums) {                                                                        \
                memset(local_dy, 0, sizeof local_dy);                                                                 \
                memset(local_dy_xhat, 0, sizeof local_dy_xhat);                                                       \
                normlab_columns_backward_f32_wide(sets, x + j, dy + j, W, given_mean ? given_mean + j : 0,            \
                                                  given_rstd ? given_rstd + j : 0, shifted_affine, dx + j, local_dy,  \
                                                  local_dy_xhat, sums_row_stride ? 8 : 0, 1);                         \
                if (narrowed_sums) {                                                                                  \
                    normlab_narrow_sums(narrowed_sums->gamma + j, local_dy_xhat, W, narrowed_sums->scaling,           \
                                        narrowed_sums->factor);                                                       \
                    normlab_narrow_sums(narrowed_sums->beta + j, local_dy, W, narrowed_sums->scaling,                 \
                                        narrowed_sums->factor);                                                       \
                } else {                                                                                              \
                    add_local_sums(sets, float_sum_dy + j, float_sum_dy_xhat + j, local_dy, local_dy_xhat, W,         \
                                   sums_row_stride);                                                                  \
                }                                                                                                     \
            } else {                                                                                                  \
                normlab_columns_backward_f32_wide(sets, x + j, dy + j, W, given_mean ? given_mean + j : 0,            \
                                                  given_rstd ? given_rstd + j : 0, shifted_affine, dx + j,            \
                                                  sum_dy ? sum_dy + j : 0, sum_dy_xhat ? sum_dy_xhat + j : 0,         \
                                                  sums_row_stride, 1);                                                \
            }                                                                                                         \
            continue;                                                                                                 \
        }                                                                                                             \
        vec##W column_dy = splat##W(0), column_dy_xhat = splat##W(0), pair = ((0.5f * eps * rstd) * rstd) * rstd;    \
        for (long r = 0; r < rows; r++) {                                                                             \
            const long at = ROW_AT(r) + j;                                                                            \
            if (rows == 2 && centre) /* sets of two: as GRADIENT_PAIR_STEP (column_tiles_f32.c) */                    \
                store##W(dx + at, (dh[r] - dh[1 - r]) * pair);                                                        \
            else                                                                                                      \
                store##W(dx + at, scale * ((dh[r] - mean_term) - h[r] * projection));                                 \
            if (!sum_dy || shared_terms) continue;                                                                    \
            if (sums_row_stride == 0) {                                                                               \
                /* Every row's sums are the same element's (BatchNorm per element): summed here, added once. */      \
                column_dy += v[r];                                                                                    \
                column_dy_xhat += v[r] * h[r];                                                                        \
            } else {                                                                                                  \
                const long s = ROW_INDEX(r) * sums_row_stride + j;                                                    \
                if (float_sums) {                                                                                     \
                    store##W(float_sum_dy + s, load##W(float_sum_dy + s) + v[r]);                                     \
                    store##W(float_sum_dy_xhat + s, load##W(float_sum_dy_xhat + s) + v[r] * h[r]);                    \
                } else {                                                                                              \
                    accumulate##W(sum_dy + s, v[r]);                                                                  \
                    accumulate##W(sum_dy_xhat + s, v[r] * h[r]);                                                      \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        if (shared_terms) column_dy = sum, column_dy_xhat = sum_products;                                             \
        if (narrowed_sums) {                                                                                          \
            NARROWED_SUMS_STORE(W, narrowed_sums->gamma + j, column_dy_xhat, narrowed_sums->scaling)                  \
            NARROWED_SUMS_STORE(W, narrowed_sums->beta + j, column_dy, narrowed_sums->scaling)                        \
        } else if (sum_dy && sums_row_stride == 0) {                                                                  \
            if (float_sums) {                                                                                         \
                store##W(float_sum_dy + j, load##W(float_sum_dy + j) + column_dy);                                    \
                store##W(float_sum_dy_xhat + j, load##W(float_sum_dy_xhat + j) + column_dy_xhat);                     \
            } else {                                                                                                  \
                accumulate##W(sum_dy + j, column_dy);                                                                 \
                accumulate##W(sum_dy_xhat + j, column_dy_xhat);                                                       \
            }                                                                                                         \
        }                                                                                                             \
    }

// Backward by blocks of eight columns, then one column at a time (sets of at most eight rows; per-element sums or
// none), as forward_blocks.
static inline __attribute__((always_inline)) void
backward_blocks(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                const double *given_mean, const double *given_rstd, normlab_column_affine affine, float *dx,
                double *sum_dy, double *sum_dy_xhat, float *float_sum_dy, float *float_sum_dy_xhat,
                const normlab_narrowed_sums *narrowed_sums, long sums_row_stride, const long fixed_rows,
                const unsigned known) {
    CONSTANTS
    // float_sums: the per-element sums are float32 arrays (the caller adds them into Float64 every eight samples);
    // a block that runs elsewhere sums into Float64 here first. narrowed_sums: each column's sums are whole in its
    // block (one sum per element, sums_row_stride 0) and go straight to float32 dγ and dβ.
    const int float_sums = float_sum_dy != 0;
    double local_dy[8 * 8], local_dy_xhat[8 * 8];
    if (float_sums || narrowed_sums) sum_dy = local_dy, sum_dy_xhat = local_dy_xhat;
    const float *gamma = affine.gamma;
    const int element_affine = known & KNOWN_ELEMENT_AFFINE;
    const long per_element = element_affine ? 1 : affine.column_stride;
    const int has_gamma = element_affine || gamma;
    const int shared_affine = element_affine && (known & KNOWN_SHARED_AFFINE);
    const float single_shifted = DIVIDE(0.0f, divisor) + eps;  /* σ² + eps of a set of one element */
    const int single_sets = rows == 1 && centre && !shared_affine && single_shifted >= 0x1p-120f &&
                            single_shifted <= 0x1p120f;
    long j = 0;
    for (; j + 8 <= width; j += 8) BACKWARD_BLOCK(8)
    for (; j < width; j++) BACKWARD_BLOCK(1)
}

static inline __attribute__((always_inline)) void
backward_any(const normlab_column_sets *sets, const float *x, const float *dy, long width, const double *given_mean,
             const double *given_rstd, normlab_column_affine affine, float *dx, double *sum_dy, double *sum_dy_xhat,
             long sums_row_stride, long sums_column_stride, const long fixed_rows) {
    if (fixed_rows > 8 || (sum_dy && sums_column_stride != 1)) {
        normlab_columns_f32_backward_tiles(sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy, sum_dy_xhat,
                                           sums_row_stride, sums_column_stride);
        return;
    }
    BY_KNOWN(known_layout(sets, affine), backward_blocks, sets, x, dy, width, given_mean, given_rstd, affine, dx, sum_dy,
             sum_dy_xhat, 0, 0, 0, sums_row_stride, fixed_rows)
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
    BY_KNOWN(known_layout(sets, affine), backward_blocks, sets, x, dy, width, 0, 0, affine, dx, 0, 0, sum_dy,
             sum_dy_xhat, 0, sums_row_stride, fixed_rows)
}

NORMLAB_CLONES
void normlab_columns_backward_f32_float_sums_general(const normlab_column_sets *sets, const float *x, const float *dy,
                                                     long width, normlab_column_affine affine, float *dx,
                                                     float *sum_dy, float *sum_dy_xhat, long sums_row_stride) {
    BY_ROWS(backward_float_sums, sets, x, dy, width, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride)
}

void normlab_columns_backward_f32_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                             long width, normlab_column_affine affine, float *dx, float *sum_dy,
                                             float *sum_dy_xhat, long sums_row_stride) {
    if (normlab_pairs_backward_applies(sets, affine, sums_row_stride))
        normlab_pairs_backward_f32_float_sums(sets, x, dy, width, affine, dx, sum_dy, sum_dy_xhat, sums_row_stride);
    else
        normlab_columns_backward_f32_float_sums_general(sets, x, dy, width, affine, dx, sum_dy, sum_dy_xhat,
                                                        sums_row_stride);
}

static inline __attribute__((always_inline)) void
backward_narrowed_sums(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                       normlab_column_affine affine, float *dx, const normlab_narrowed_sums *narrowed_sums,
                       const long fixed_rows) {
    BY_KNOWN(known_layout(sets, affine), backward_blocks, sets, x, dy, width, 0, 0, affine, dx, 0, 0, 0, 0,
             narrowed_sums, 0, fixed_rows)
}

NORMLAB_CLONES
void normlab_columns_backward_f32_narrowed_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                                long width, normlab_column_affine affine, float *dx,
                                                const normlab_narrowed_sums *sums) {
    BY_ROWS(backward_narrowed_sums, sets, x, dy, width, affine, dx, sums)
}
