#include "column_lanes_f32.h"

// Sets of two rows backward with γ per element and float32 stages for dγ and dβ (PyDLLib's GroupNorm with two
// channels a group, per position): backward_blocks' steps for exactly that case (column_sets_f32.c: BLOCK_STATISTICS
// with PAIR_STATISTICS, then BACKWARD_BLOCK's pair branch), with nothing left to test per block but the range. The
// general block loop carries every layout's pointers and flags, more than the registers hold, and reloaded them from
// the stack on every block. Sixteen columns a step, two blocks of eight; a step out of range, and the columns after the
// last whole step, run in the general loops (the same bits: columns are independent, and their blocks of eight start
// at the same multiples of eight).
#pragma clang fp contract(off)

#include "clones.h"

// Each row's x and dy 512 floats (2 KB) ahead: backward 0.64 ms median against 0.67 with 256, 0.67 with 1024, and
// 0.69 without (REPL, PyDLLib GroupNorm 32 at (8, 64, 56, 56), one thread).
enum { AHEAD_PAIRS = 512 };

// Block k (0 or 8) of the step at j: statistics (μ₀ = a, d = (0, b − a)), x̂, dx̂ = dy·γ, the range tests, and dx.
#define PAIR_BLOCK(k)                                                                                                 \
    const v8f a##k = load8(x + j + k), b##k = load8(x + stride + j + k);                                              \
    const v8f d0_##k = a##k - a##k, d1_##k = b##k - a##k;                                                             \
    const v8f offset##k = d1_##k * m_scale;                                                                           \
    const v8f shifted##k = ((offset##k * offset##k) * 2.0f) * divisor_scale + eps;                                    \
    mask8 ok##k = (shifted##k >= 0x1p-120f) & (shifted##k <= 0x1p120f);                                               \
    const v8f rstd##k = 1.0f / __builtin_elementwise_sqrt(shifted##k);                                                \
    const v8f shift##k = -offset##k * rstd##k;                                                                        \
    const v8f h0_##k = d0_##k * rstd##k + shift##k;                                                                   \
    const v8f h1_##k = d1_##k * rstd##k + shift##k;                                                                   \
    const v8f dy0_##k = load8(dy + j + k), dy1_##k = load8(dy + stride + j + k);                                      \
    const v8f dh0_##k = dy0_##k * load8(gamma0 + j + k);                                                              \
    const v8f dh1_##k = dy1_##k * load8(gamma1 + j + k);                                                              \
    const v8f gap##k = dh0_##k - dh1_##k;                                                                             \
    ok##k &= (gap##k > -0x1p100f) & (gap##k < 0x1p100f);                                                              \
    const v8f pair##k = ((0.5f * eps * rstd##k) * rstd##k) * rstd##k;

#define PAIR_STORE(k)                                                                                                 \
    store8(dx + j + k, (dh0_##k - dh1_##k) * pair##k);                                                                \
    store8(stage_dy + j + k, load8(stage_dy + j + k) + dy0_##k);                                                      \
    store8(stage_dy_xhat + j + k, load8(stage_dy_xhat + j + k) + dy0_##k * h0_##k);                                   \
    store8(dx + stride + j + k, (dh1_##k - dh0_##k) * pair##k);                                                       \
    store8(stage_dy + sums_row_stride + j + k, load8(stage_dy + sums_row_stride + j + k) + dy1_##k);                  \
    store8(stage_dy_xhat + sums_row_stride + j + k,                                                                   \
           load8(stage_dy_xhat + sums_row_stride + j + k) + dy1_##k * h1_##k);

int normlab_pairs_backward_applies(const normlab_column_sets *sets, normlab_column_affine affine,
                                   long sums_row_stride) {
    return sets->rows == 2 && sets->centre && !sets->row_offsets && !sets->row_index && affine.gamma &&
           affine.column_stride == 1 && sums_row_stride != 0 && normlab_power_of_two(sets->m) &&
           normlab_power_of_two(sets->divisor);
}

NORMLAB_CLONES
void normlab_pairs_backward_f32_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                           long width, normlab_column_affine affine, float *dx, float *stage_dy,
                                           float *stage_dy_xhat, long sums_row_stride) {
    const long stride = sets->row_stride;
    // DIVIDE's multiplications (m and the divisor are powers of two).
    const float m_scale = 1.0f / (float)sets->m, divisor_scale = 1.0f / (float)sets->divisor, eps = (float)sets->eps;
    const float *gamma0 = affine.gamma, *gamma1 = gamma0 + affine.row_stride;
    long j = 0;
    for (; j + 16 <= width; j += 16) {
        __builtin_prefetch(x + j + AHEAD_PAIRS);
        __builtin_prefetch(x + stride + j + AHEAD_PAIRS);
        __builtin_prefetch(dy + j + AHEAD_PAIRS);
        __builtin_prefetch(dy + stride + j + AHEAD_PAIRS);
        PAIR_BLOCK(0)
        PAIR_BLOCK(8)
        if (!all8(ok0 & ok8)) {
            normlab_column_affine rest = affine;
            rest.gamma = gamma0 + j;
            normlab_columns_backward_f32_float_sums_general(sets, x + j, dy + j, 16, rest, dx + j, stage_dy + j,
                                                            stage_dy_xhat + j, sums_row_stride);
            continue;
        }
        PAIR_STORE(0)
        PAIR_STORE(8)
    }
    if (j < width) {
        normlab_column_affine rest = affine;
        rest.gamma = gamma0 + j;
        normlab_columns_backward_f32_float_sums_general(sets, x + j, dy + j, width - j, rest, dx + j, stage_dy + j,
                                                        stage_dy_xhat + j, sums_row_stride);
    }
}
