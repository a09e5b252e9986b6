#include "column_sets.h"

#include <math.h>
#include <string.h>

// Statistics sets that are columns: a tile of `width` sets side by side, each made of the elements at the same column
// of `rows` rows, the rows `row_stride` apart. PyDLLib's GroupNorm (per position over a group's channel rows) and
// BatchNorm (per element over the samples) are both this shape; see ColumnKernels.swift for how the tensors map.
//
// Four columns are carried together in vector registers from the first read of x to the last write, so μ, σ², rstd,
// x̂ and y never leave registers (the statistics are half as many values as the input for two-channel groups, and a
// pass over a tile's statistics arrays per step cost more than the arithmetic). Columns that do not fill four lanes
// run the same steps one at a time. The arithmetic is IEEE double, lane-wise, never contracted into fused operations,
// and each column's rows are summed in row order: a column gets the same bits in a lane or alone, on any CPU, for any
// tile split or thread count.
#pragma clang fp contract(off)

#include "clones.h"
#include "power_of_two.h"

#define NORMLAB_INLINE static inline __attribute__((always_inline))

typedef double v4d __attribute__((vector_size(32)));
typedef long v4l __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));


// Loads and stores of four columns (v4) or one (s1), from the element type (f: float, d: double) or Float64 arrays.
// (Macros, not functions: a function taking or returning a 256-bit vector has a different ABI with and without AVX.)
#define load4_float(p) ({ v4f v_; memcpy(&v_, (p), sizeof v_); __builtin_convertvector(v_, v4d); })
#define load4_double(p) ({ v4d v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store4_float(p, v) do { v4f n_ = __builtin_convertvector((v), v4f); memcpy((p), &n_, sizeof n_); } while (0)
#define store4_double(p, v) do { v4d n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define load1_float(p) ((double)*(p))
typedef v4l mask4;
typedef int mask1;
#define all4 ((v4l){-1, -1, -1, -1})
#define all1 1
#define select4(m, a, b) ((v4d)(((v4l)(a) & (m)) | ((v4l)(b) & ~(m))))
#define select1(m, a, b) ((m) ? (a) : (b))
#define load1_double(p) (*(p))
#define store1_float(p, v) (*(p) = (float)(v))
#define store1_double(p, v) (*(p) = (v))

// μ (shifted by the first row, so a constant column gets its value exactly: every difference is 0), Σ(x − μ)², σ²
// and rstd of the columns at x. Without centring μ = 0 and σ² is the mean square.
#define NORMLAB_COLUMN_MOMENTS(V, W, T, mean)                                                                           \
    V mean = zero, q = zero;                                                                                          \
    if (sets->centre) {                                                                                               \
        V first = load##W##_##T(x + j), s = zero;                                                                     \
        if (sets->mean_from_sum) {                                                                                    \
            /* Σx / m in row order, as NumPy sums over an axis; a column whose rows all equal the first gets that     \
               value exactly (Σx / m may round). */                                                                   \
            mask##W same = all##W;                                                                                    \
            for (long r = 0; r < rows; r++) {                                                                         \
                V value = load##W##_##T(x + ROW_AT(r) + j);                                                          \
                s += value;                                                                                           \
                same &= value == first;                                                                               \
            }                                                                                                         \
            mean = select##W(same, first, mean_by_scaling ? s * mean_scale : s / m);                                  \
        } else {                                                                                                      \
            for (long r = 1; r < rows; r++) s += load##W##_##T(x + ROW_AT(r) + j) - first;                          \
            mean = first + (mean_by_scaling ? s * mean_scale : s / m);                                                \
        }                                                                                                             \
    }                                                                                                                 \
    for (long r = 0; r < rows; r++) {                                                                                 \
        V d = load##W##_##T(x + ROW_AT(r) + j) - mean;                                                               \
        q += d * d;                                                                                                   \
    }                                                                                                                 \
    V variance = variance_by_scaling ? q * variance_scale : q / divisor;

// rstd of a whole tile in one loop: the square root and the division are slow and their latency is long, so they
// run back to back for many columns (pipelined) rather than once per four columns between the loads and stores.
#define NORMLAB_TILE_RSTD                                                                                              \
    for (long c = 0; c < width; c++) tile_rstd[c] = 1.0 / __builtin_elementwise_sqrt(tile_variance[c] + eps);

// Row r's offset from the tile's start, and its index among γ, β and the per-row sums.
#define ROW_AT(r) (row_offsets ? row_offsets[r] : (r) * stride)
#define ROW_INDEX(r) (row_index ? row_index[r] : (r))

#define NORMLAB_COLUMN_CONSTANTS                                                                                       \
    const long rows = sets->rows, stride = sets->row_stride;                                                          \
    const long *row_offsets = sets->row_offsets, *row_index = sets->row_index;                                        \
    const double m = sets->m, divisor = sets->divisor, eps = sets->eps;                                               \
    const int mean_by_scaling = normlab_power_of_two(m);                                                              \
    const int variance_by_scaling = normlab_power_of_two(divisor);                                                    \
    const double mean_scale = 1.0 / m, variance_scale = 1.0 / divisor;                                                \
    (void)eps;

#define NORMLAB_FORWARD_MOMENTS_STEP(V, W, T)                                                                          \
    {                                                                                                                 \
        const V zero = {0};                                                                                           \
        NORMLAB_COLUMN_MOMENTS(V, W, T, mean)                                                                         \
        bad##W |= (mean - mean != 0) | (variance - variance != 0);                                                    \
        zeros##W -= (variance == 0); /* true is −1 in a vector lane, 1 alone */                                       \
        store##W##_double(tile_mean + j, mean);                                                                       \
        store##W##_double(tile_variance + j, variance);                                                               \
        if (sum_squares_out) store##W##_double(sum_squares_out + j, q);                                               \
    }

#define NORMLAB_FORWARD_NORMALISE_STEP(V, W, T)                                                                        \
    {                                                                                                                 \
        const V zero = {0};                                                                                           \
        V mean = load##W##_double(tile_mean + j), rstd = load##W##_double(tile_rstd + j);                             \
        for (long r = 0; r < rows; r++) {                                                                             \
            const long at = ROW_AT(r) + j;                                                                            \
            V h = (load##W##_##T(x + at) - mean) * rstd;                                                              \
            if (xhat) store##W##_##T(xhat + at, h);                                                                   \
            if (!y) continue;                                                                                         \
            if (!gamma) {                                                                                             \
                store##W##_##T(y + at, h);                                                                            \
            } else {                                                                                                  \
                const long p = ROW_INDEX(r) * affine.row_stride + j * affine.column_stride;                                     \
                V g = affine.column_stride ? load##W##_##T(gamma + p) : zero + (double)gamma[p];                     \
                V b = !beta ? zero : affine.column_stride ? load##W##_##T(beta + p) : zero + (double)beta[p];        \
                store##W##_##T(y + at, g * h + b);                                                                    \
            }                                                                                                         \
        }                                                                                                             \
    }

#define NORMLAB_FORWARD(T, SUFFIX)                                                                                     \
    NORMLAB_CLONES                                                                                                    \
    void normlab_columns_forward_##SUFFIX(const normlab_column_sets *sets, const T *x, long width,                    \
                                          normlab_column_affine affine, T *xhat, T *y, double *mean_out,              \
                                          double *variance_out, double *rstd_out, double *sum_squares_out,            \
                                          long *zero_variances, int *finite) {                                        \
        if (width > NORMLAB_COLUMN_TILE && !(mean_out && variance_out && rstd_out)) {                                 \
            /* The statistics are kept on the stack: at most a tile of columns at a time. */                          \
            for (long first = 0; first < width; first += NORMLAB_COLUMN_TILE) {                                       \
                long part = width - first < NORMLAB_COLUMN_TILE ? width - first : NORMLAB_COLUMN_TILE;                \
                normlab_column_affine shifted = affine;                                                               \
                if (affine.gamma) shifted.gamma = (const T *)affine.gamma + first * affine.column_stride;             \
                if (affine.beta) shifted.beta = (const T *)affine.beta + first * affine.column_stride;                \
                normlab_columns_forward_##SUFFIX(sets, x + first, part, shifted, xhat ? xhat + first : 0,             \
                    y ? y + first : 0, mean_out ? mean_out + first : 0, variance_out ? variance_out + first : 0,      \
                    rstd_out ? rstd_out + first : 0, sum_squares_out ? sum_squares_out + first : 0, zero_variances,   \
                    finite);                                                                                          \
            }                                                                                                         \
            return;                                                                                                   \
        }                                                                                                             \
        NORMLAB_COLUMN_CONSTANTS                                                                                      \
        const T *gamma = (const T *)affine.gamma, *beta = (const T *)affine.beta;                                    \
        double local_mean[NORMLAB_COLUMN_TILE], local_variance[NORMLAB_COLUMN_TILE], local_rstd[NORMLAB_COLUMN_TILE]; \
        double *tile_mean = mean_out ? mean_out : local_mean;                                                         \
        double *tile_variance = variance_out ? variance_out : local_variance;                                         \
        double *tile_rstd = rstd_out ? rstd_out : local_rstd;                                                         \
        v4l bad4 = {0}, zeros4 = {0};                                                                                 \
        long bad1 = 0, zeros1 = 0;                                                                                    \
        long j = 0;                                                                                                   \
        for (; j + 4 <= width; j += 4) NORMLAB_FORWARD_MOMENTS_STEP(v4d, 4, T)                                        \
        for (; j < width; j++) NORMLAB_FORWARD_MOMENTS_STEP(double, 1, T)                                             \
        NORMLAB_TILE_RSTD                                                                                             \
        *zero_variances += (zeros4[0] + zeros4[1]) + (zeros4[2] + zeros4[3]) - zeros1;                                \
        if (bad1 | bad4[0] | bad4[1] | bad4[2] | bad4[3]) *finite = 0;                                                \
        if (!xhat && !y) return;                                                                                      \
        for (j = 0; j + 4 <= width; j += 4) NORMLAB_FORWARD_NORMALISE_STEP(v4d, 4, T)                                 \
        for (; j < width; j++) NORMLAB_FORWARD_NORMALISE_STEP(double, 1, T)                                           \
    }

// Row r of the columns at j in backward: its offset `at`, dy, x̂ and dx̂ = dy·γ, as both of a step's loops read them.
#define NORMLAB_BACKWARD_ROW(V, W, T)                                                                                  \
            const long at = ROW_AT(r) + j;                                                                            \
            V d = load##W##_##T(dy + at), h = (load##W##_##T(x + at) - mean) * rstd;                                  \
            V dh = d;                                                                                                 \
            if (gamma) {                                                                                              \
                const long p = ROW_INDEX(r) * affine.row_stride + j * affine.column_stride;                                     \
                dh = d * (affine.column_stride ? load##W##_##T(gamma + p) : zero + (double)gamma[p]);                \
            }

// dx = rstd·(dx̂ − Σdx̂/m − x̂·Σ(dx̂·x̂)/divisor) with dx̂ = dy·γ; per-element sums of dy and dy·x̂ for γ and β.
#define NORMLAB_BACKWARD_STEP(V, W, T)                                                                                 \
    {                                                                                                                 \
        const V zero = {0};                                                                                           \
        V mean = load##W##_double(given_mean + j), rstd = load##W##_double(given_rstd + j);                           \
        V sum_d = zero, sum_dh = zero;                                                                                \
        for (long r = 0; r < rows; r++) {                                                                             \
            NORMLAB_BACKWARD_ROW(V, W, T)                                                                             \
            sum_d += dh;                                                                                              \
            sum_dh += dh * h;                                                                                         \
            if (element_sums) {                                                                                       \
                const long s = ROW_INDEX(r) * sums_row_stride + j;                                                               \
                store##W##_double(sum_dy + s, load##W##_double(sum_dy + s) + d);                                      \
                store##W##_double(sum_dy_xhat + s, load##W##_double(sum_dy_xhat + s) + d * h);                        \
            }                                                                                                         \
        }                                                                                                             \
        V mean_term = !sets->centre ? zero : mean_by_scaling ? sum_d * mean_scale : sum_d / m;                       \
        V projection = variance_by_scaling ? sum_dh * variance_scale : sum_dh / divisor;                             \
        for (long r = 0; r < rows; r++) {                                                                             \
            NORMLAB_BACKWARD_ROW(V, W, T)                                                                             \
            store##W##_##T(dx + at, rstd * ((dh - mean_term) - h * projection));                                      \
        }                                                                                                             \
    }

#define NORMLAB_BACKWARD(T, SUFFIX)                                                                                    \
    NORMLAB_CLONES                                                                                                    \
    void normlab_columns_backward_##SUFFIX(const normlab_column_sets *sets, const T *x, const T *dy, long width,      \
                                           const double *given_mean, const double *given_rstd,                        \
                                           normlab_column_affine affine, T *dx, double *sum_dy, double *sum_dy_xhat,  \
                                           long sums_row_stride, long sums_column_stride) {                           \
        if (width > NORMLAB_COLUMN_TILE && (!given_mean || (sum_dy && sums_column_stride != 1))) {                   \
            /* Statistics made here, or one sum per row, are kept on the stack: a tile of columns at a time. */       \
            for (long first = 0; first < width; first += NORMLAB_COLUMN_TILE) {                                       \
                long part = width - first < NORMLAB_COLUMN_TILE ? width - first : NORMLAB_COLUMN_TILE;                \
                normlab_column_affine shifted = affine;                                                               \
                if (affine.gamma) shifted.gamma = (const T *)affine.gamma + first * affine.column_stride;             \
                normlab_columns_backward_##SUFFIX(sets, x + first, dy + first, part,                                  \
                    given_mean ? given_mean + first : 0, given_rstd ? given_rstd + first : 0, shifted, dx + first,    \
                    sum_dy ? sum_dy + first * sums_column_stride : 0,                                                 \
                    sum_dy_xhat ? sum_dy_xhat + first * sums_column_stride : 0, sums_row_stride, sums_column_stride); \
            }                                                                                                         \
            return;                                                                                                   \
        }                                                                                                             \
        NORMLAB_COLUMN_CONSTANTS                                                                                      \
        const T *gamma = (const T *)affine.gamma;                                                                     \
        const int element_sums = sum_dy && sums_column_stride == 1;                                                   \
        double mean_buffer[NORMLAB_COLUMN_TILE], rstd_buffer[NORMLAB_COLUMN_TILE];                                    \
        if (!given_mean) {                                                                                            \
            long zeros = 0;                                                                                           \
            int finite = 1;                                                                                           \
            normlab_column_affine none = {0, 0, 0, 0};                                                                \
            normlab_columns_forward_##SUFFIX(sets, x, width, none, 0, 0, mean_buffer, 0, rstd_buffer, 0, &zeros,      \
                                             &finite);                                                                \
            given_mean = mean_buffer;                                                                                 \
            given_rstd = rstd_buffer;                                                                                 \
        }                                                                                                             \
        if (sum_dy && !element_sums) {                                                                                \
            /* One sum per row over the tile's columns, in four lanes then combined. */                               \
            for (long r = 0; r < rows; r++) {                                                                         \
                const T *xr = x + ROW_AT(r), *dyr = dy + ROW_AT(r);                                                 \
                double a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};                                                      \
                for (long c = 0; c < width; c++) {                                                                    \
                    double d = (double)dyr[c];                                                                        \
                    a[c & 3] += d;                                                                                    \
                    b[c & 3] += d * (((double)xr[c] - given_mean[c]) * given_rstd[c]);                                \
                }                                                                                                     \
                sum_dy[ROW_INDEX(r) * sums_row_stride] += (a[0] + a[1]) + (a[2] + a[3]);                              \
                sum_dy_xhat[ROW_INDEX(r) * sums_row_stride] += (b[0] + b[1]) + (b[2] + b[3]);                                    \
            }                                                                                                         \
        }                                                                                                             \
        long j = 0;                                                                                                   \
        for (; j + 4 <= width; j += 4) NORMLAB_BACKWARD_STEP(v4d, 4, T)                                               \
        for (; j < width; j++) NORMLAB_BACKWARD_STEP(double, 1, T)                                                    \
    }

// float32 tensors run in column_sets_f32.c, which falls back to these for tiles outside float32's comfortable range.
NORMLAB_FORWARD(float, f32_wide)
NORMLAB_BACKWARD(float, f32_wide)
NORMLAB_FORWARD(double, f64)
NORMLAB_BACKWARD(double, f64)
