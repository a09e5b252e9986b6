#include "column_lanes_f32.h"

// BatchNorm per element backward (float32, at most eight samples) from what forward kept: each column's μ₀, rstd and
// c, so x̂ = (x − μ₀)·rstd + c is made without the statistics. Making them again from x was most of the block's
// work and the longest chain of dependent operations in it (x → Σ(x − x₀) → μ₀ → Σd, Σd² → σ² → √ → rstd → x̂),
// which kept the blocks from overlapping: a C benchmark of the kernel alone at (8, 64, 56, 56), 1.24 → 0.84 ms
// (with x, dy and dx in L2, 1.22 → 0.53 ms). The operations after x̂ are BACKWARD_BLOCK's with γ shared by a column's rows (column_sets_f32.c)
// in the same order, and forward made μ₀, rstd and c from the same x with the same operations as a backward would,
// so the same bits (`KeptConstantsTests`).
#pragma clang fp contract(off)

#include "clones.h"

// Eight columns of `rows` samples: dx, and dγ, dβ narrowed; false (nothing written) when a column's constants were not
// kept or its terms leave float32's comfortable range, as BACKWARD_BLOCK would find them.
static inline __attribute__((always_inline)) int
kept_block(const normlab_column_sets *sets, const float *x, const float *dy, long j, const float *gamma, float *dx,
           const normlab_narrowed_sums *narrowed_sums, const float *first_mean, const float *rstds,
           const float *shifts, const long rows, const int m_scaled, const int divisor_scaled, const int scaling) {
    const long stride = sets->row_stride;
    const float m_float = (float)sets->m, divisor_float = (float)sets->divisor;
    const float m_scale = 1.0f / m_float, divisor_scale = 1.0f / divisor_float;
    const v8f mean = load8(first_mean + j), rstd = load8(rstds + j), shift = load8(shifts + j);
    v8f h[8], sum = splat8(0), sum_products = splat8(0);
    for (long r = 0; r < rows; r++) {
        h[r] = (load8(x + r * stride + j) - mean) * rstd + shift;
        const v8f g = load8(dy + r * stride + j);
        sum += g;
        sum_products += g * h[r];
    }
    const v8f mean_term = DIVIDE(sum, m), projection = DIVIDE(sum_products, divisor), scale = rstd * load8(gamma + j);
    // A column whose constants were not kept has a NaN shift, so a NaN x̂ and Σdy·x̂: its block fails here too.
    const v8i ok = (mean_term > -0x1p100f) & (mean_term < 0x1p100f) & (projection > -0x1p100f) &
                   (projection < 0x1p100f) & (scale > -0x1p100f) & (scale < 0x1p100f);
    if (!all8(ok)) return 0;
    for (long r = 0; r < rows; r++) {
        const long at = r * stride + j;
        store8(dx + at, scale * ((load8(dy + at) - mean_term) - h[r] * projection));
    }
    NARROWED_SUMS_STORE(8, narrowed_sums->gamma + j, sum_products, scaling)
    NARROWED_SUMS_STORE(8, narrowed_sums->beta + j, sum, scaling)
    return 1;
}

// Columns [from, to) as normlab_columns_backward_f32_narrowed_sums runs them (statistics made again from x).
static void made_again(const normlab_column_sets *sets, const float *x, const float *dy, normlab_column_affine affine,
                       float *dx, const normlab_narrowed_sums *sums, long from, long to) {
    if (from >= to) return;
    affine.gamma = (const float *)affine.gamma + from;
    const normlab_narrowed_sums part = {sums->gamma + from, sums->beta + from, sums->scaling, sums->factor};
    normlab_columns_backward_f32_narrowed_sums(sets, x + from, dy + from, to - from, affine, dx + from, &part);
}

// Blocks of eight from the constants; blocks they do not cover, and the columns after the last block, made again.
static inline __attribute__((always_inline)) void
kept_blocks(const normlab_column_sets *sets, const float *x, const float *dy, long width, normlab_column_affine affine,
            float *dx, const normlab_narrowed_sums *sums, const float *first_mean, const float *rstd,
            const float *shift, const long rows, const int powers_of_two, const int fixed_scaling) {
    const float *gamma = affine.gamma;
    const int m_scaled = powers_of_two || normlab_power_of_two(sets->m);
    const int divisor_scaled = powers_of_two || normlab_power_of_two(sets->divisor);
    const int scaling = fixed_scaling >= 0 ? fixed_scaling : sums->scaling;
    long j = 0, pending = 0;  // columns [pending, j) are left to be made again
    for (; j + 8 <= width; j += 8) {
        if (kept_block(sets, x, dy, j, gamma, dx, sums, first_mean, rstd, shift, rows, m_scaled, divisor_scaled,
                       scaling)) {
            made_again(sets, x, dy, affine, dx, sums, pending, j);
            pending = j + 8;
        }
    }
    made_again(sets, x, dy, affine, dx, sums, pending, width);
}

NORMLAB_CLONES
void normlab_columns_backward_f32_kept(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                       normlab_column_affine affine, float *dx, const normlab_narrowed_sums *sums,
                                       const float *first_mean, const float *rstd, const float *shift) {
    const int per_element_batch = !sets->row_offsets && !sets->row_index && sets->centre && affine.gamma &&
                                  affine.column_stride == 1 && affine.row_stride == 0;
    if (!per_element_batch || sets->rows > 8 || sets->rows == 2 || !first_mean || !rstd || !shift) {
        normlab_columns_backward_f32_narrowed_sums(sets, x, dy, width, affine, dx, sums);
        return;
    }
    // PyDLLib's eight samples (m and the divisor 8, dγ and dβ times 1/8) get loops without the choices' tests.
    if (sets->rows == 8 && normlab_power_of_two(sets->divisor) && sums->scaling == 1)
        kept_blocks(sets, x, dy, width, affine, dx, sums, first_mean, rstd, shift, 8, 1, 1);
    else if (sets->rows == 8)
        kept_blocks(sets, x, dy, width, affine, dx, sums, first_mean, rstd, shift, 8, 0, -1);
    else
        kept_blocks(sets, x, dy, width, affine, dx, sums, first_mean, rstd, shift, sets->rows, 0, -1);
}
