#ifndef NORMLAB_COLUMN_SINGLE_F32_H
#define NORMLAB_COLUMN_SINGLE_F32_H

// The block loops' own steps for sets of one element (PyDLLib's InstanceNorm), forward and backward: macros that
// column_sets_f32.c's forward_blocks and BACKWARD_BLOCK expand, with their locals (rows, centre, affine, the outputs).

// Sets of one element, y alone (PyDLLib's InstanceNorm): BLOCK_STATISTICS's steps for them in a loop of its own
// — where x is finite, σ² + eps is the call's one constant and x̂ = d·rstd − c·rstd is ±0 — and y = γ·x̂ + β as
// FORWARD_BLOCK makes it; a block with a non-finite x is FORWARD_BLOCK's. (FORWARD_BLOCK's outputs, tests and counts
// for any set were most of this forward's time: 0.42 → 0.27 ms at (8, 64, 56, 56).) For forward_blocks, before its
// blocks: the columns it leaves are theirs.
#define SINGLE_FORWARD_LOOP                                                                                           \
    const float single_shifted = DIVIDE(0.0f, divisor) + eps;                                                         \
    if (rows == 1 && centre && element_affine && !shared_affine && y && !mean_out && !variance_out && !rstd_out &&    \
        !sum_squares_out && !narrowed && single_shifted >= 0x1p-120f && single_shifted <= 0x1p120f) {                 \
        const vec16 rstd = splat16(single_rstd), zero_mean = DIVIDE(splat16(0), m);                                   \
        const long variance_zero = DIVIDE(0.0f, divisor) == 0;                                                        \
        long counted = 0;                                                                                             \
        /* Sixteen columns a block, as FORWARD_BLOCK's: a block out of range runs in the Float64 lanes whole. */      \
        while (j + 16 <= width) {                                                                                     \
            const vec16 v = load16(x + ROW_AT(0) + j), mean = v + zero_mean;                                          \
            if (all16(mean - mean == 0)) {                                                                            \
                const vec16 d = v - mean, offset = DIVIDE(splat16(0) + d, m), h = d * rstd + -offset * rstd;          \
                const long p = ROW_INDEX(0) * affine.row_stride + j;                                                  \
                store16(y + ROW_AT(0) + j, load16(gamma + p) * h + load16(beta + p));                                 \
                counted += 16 * variance_zero;                                                                        \
                j += 16;                                                                                              \
                continue;                                                                                             \
            }                                                                                                         \
            FORWARD_BLOCK(16)                                                                                         \
        }                                                                                                             \
        *zero_variances += counted;                                                                                   \
    }

// SINGLE_BACKWARD reads x and dy 512 floats (2 KB) ahead: a unit's runs are a group's 12.5 KB of each sample, 800 KB
// apart. Backward 0.57 / 0.58 -> 0.52 / 0.54 ms, two threads 0.33 / 0.38 -> 0.30 / 0.32 (min / median, REPL,
// (8, 64, 56, 56) float32); forward's loop was no faster with it.
enum { SINGLE_AHEAD = 512 };

// Sets of one element (PyDLLib's InstanceNorm), γ not shared by rows, σ² + eps in range: BACKWARD_BLOCK's steps for
// them without its sums of rows and most of its range tests — in range where x is finite (then so are μ and c) and
// |γ·dy| < 2¹⁰⁰ (then Σdx̂·x̂ is ±0, x̂ being ±0). The same values (x̂ and dx are ±0, signs and all), and the same sums
// but one: Σdy·x̂'s term is ±0, and adding it to a float32 stage would leave the stage as it was (a stage starts at
// +0 and a float sum is −0 only when both terms are, so a stage is never −0, and s + ±0 = s for every other s), so
// that load and store are left out. A block out of that range is BACKWARD_BLOCK's (this evaluates to 0).
#define SINGLE_BACKWARD(W)                                                                                            \
    ({                                                                                                                \
        const long at_ = ROW_AT(0) + j;                                                                               \
        __builtin_prefetch(x + at_ + SINGLE_AHEAD);                                                                   \
        __builtin_prefetch(dy + at_ + SINGLE_AHEAD);                                                                  \
        const vec##W x_ = load##W(x + at_), dy_ = load##W(dy + at_), rstd_ = splat##W(single_rstd);                    \
        const vec##W mean_ = x_ + DIVIDE(splat##W(0), m), d_ = x_ - mean_;                                            \
        const vec##W offset_ = DIVIDE(splat##W(0) + d_, m), xhat_ = d_ * rstd_ + -offset_ * rstd_;                    \
        vec##W dh_ = dy_;                                                                                             \
        if (has_gamma) {                                                                                              \
            const long p_ = ROW_INDEX(0) * affine.row_stride + j * per_element;                                       \
            dh_ = dy_ * (per_element ? load##W(gamma + p_) : splat##W(gamma[p_]));                                    \
        }                                                                                                             \
        const vec##W mean_term_ = DIVIDE(splat##W(0) + dh_, m);                                                       \
        const int in_range_ = all##W((mean_ - mean_ == 0) & (mean_term_ > -0x1p100f) & (mean_term_ < 0x1p100f));      \
        if (in_range_) {                                                                                              \
            const vec##W projection_ = DIVIDE(splat##W(0) + dh_ * xhat_, divisor);                                    \
            store##W(dx + at_, rstd_ * ((dh_ - mean_term_) - xhat_ * projection_));                                   \
            const vec##W column_dy_ = splat##W(0) + dy_, column_dy_xhat_ = splat##W(0) + dy_ * xhat_;                 \
            if (!sum_dy) {                                                                                            \
            } else if (narrowed_sums) {                                                                               \
                NARROWED_SUMS_STORE(W, narrowed_sums->gamma + j, column_dy_xhat_, narrowed_sums->scaling)             \
                NARROWED_SUMS_STORE(W, narrowed_sums->beta + j, column_dy_, narrowed_sums->scaling)                   \
            } else {                                                                                                  \
                const long sums_at_ = sums_row_stride == 0 ? j : ROW_INDEX(0) * sums_row_stride + j;                  \
                const vec##W term_dy_ = sums_row_stride == 0 ? column_dy_ : dy_;                                      \
                if (float_sums) {                                                                                     \
                    store##W(float_sum_dy + sums_at_, load##W(float_sum_dy + sums_at_) + term_dy_);                   \
                } else {                                                                                              \
                    accumulate##W(sum_dy + sums_at_, term_dy_);                                                       \
                    accumulate##W(sum_dy_xhat + sums_at_, sums_row_stride == 0 ? column_dy_xhat_ : dy_ * xhat_);      \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        in_range_;                                                                                                    \
    })

#endif
