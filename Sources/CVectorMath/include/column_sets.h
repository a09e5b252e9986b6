#ifndef NORMLAB_COLUMN_SETS_H
#define NORMLAB_COLUMN_SETS_H

/// Columns (statistics sets) whose statistics a call keeps on the stack, in L1; a wider call runs in tiles of this
/// many unless it is given (forward: writes) μ, σ² and rstd arrays itself.
#define NORMLAB_COLUMN_TILE 256
/// The float32 loops' largest tile (column_tiles_f32.h): a call of up to this many columns runs as one tile, so each
/// row is read and written in one run (the caller picks widths that keep a tile's rows in L2).
#define NORMLAB_COLUMN_TILE_F32 4096

/// Statistics sets that are columns: set j of a tile is the elements x[r·row_stride + j] for r < rows — or, when
/// row_offsets is not NULL, x[row_offsets[r] + j] (BatchNorm with grouped channels: K rows of each sample).
/// γ, β and the per-row sums of row r are at index row_index[r] (r when NULL) times their row stride.
typedef struct normlab_column_sets {
    long rows;         // elements per set (m)
    long row_stride;   // elements between one row of the tile and the next
    const long *row_offsets;
    const long *row_index;
    double m;          // rows, as a double
    double divisor;    // m, or m − 1 for the unbiased variance
    double eps;
    int centre;        // 1: subtract the mean; 0: σ² is the mean square (RMSNorm)
    int mean_from_sum; // 1: μ = Σx / m in row order (NumPy's order); 0: μ = x₀ + Σ(x − x₀) / m
} normlab_column_sets;

/// γ and β (the element type; NULL for 1 and 0) at gamma[r·row_stride + j·column_stride] for row r, column j;
/// column_stride is 0 (one value per row) or 1 (one per element).
typedef struct normlab_column_affine {
    const void *gamma;
    const void *beta;
    long row_stride;
    long column_stride;
} normlab_column_affine;

/// The float32 lanes' statistics in float32 (BatchNorm's, kept as tensors), each the float32 value nearest the Float64
/// one the lanes would otherwise write — μ, σ², rstd and Σ(x − μ)²/unbiased_divisor — made from the lanes' float32
/// values in float32 (a sum or quotient of two float32 numbers rounded once from Float64 is the float32 sum or
/// quotient). unbiased_divisor (m − 1) must be exact in float32.
/// first_mean and shift (may be NULL): what a backward needs to make x̂ = (x − μ₀)·rstd + c again without the
/// statistics, μ₀ and c per column; a column made in the Float64 lanes gets a NaN shift (a backward makes its
/// statistics again).
typedef struct normlab_narrowed_statistics {
    float *mean;
    float *variance;
    float *rstd;
    float *unbiased;
    double unbiased_divisor;
    float *first_mean;
    float *shift;
} normlab_narrowed_statistics;

/// One tile forward: statistics per column, then y = γ·x̂ + β with x̂ = (x − μ)·rstd — for float64 in double lanes
/// (column_sets.c); for float32 in float32 lanes with Float64 where sums grow (column_sets_f32.c, which hands a tile
/// outside float32's range to the double lanes). xhat, y, mean_out, variance_out, rstd_out and sum_squares_out
/// (Σ(x − μ)², before the division) may be NULL (not written). Adds the count of zero variances to *zero_variances and clears *finite when a mean or variance is
/// not finite. With `narrowed` (float32 only), the statistics go there in float32 instead, and the four Float64 arrays
/// (all given) are scratch: only columns run in the Float64 lanes write them (then narrowed from them).
void normlab_columns_forward_f32(const normlab_column_sets *sets, const float *x, long width,
                                 normlab_column_affine affine, float *xhat, float *y, double *mean_out,
                                 double *variance_out, double *rstd_out, double *sum_squares_out, long *zero_variances,
                                 int *finite, const normlab_narrowed_statistics *narrowed);
void normlab_columns_forward_f64(const normlab_column_sets *sets, const double *x, long width,
                                 normlab_column_affine affine, double *xhat, double *y, double *mean_out,
                                 double *variance_out, double *rstd_out, double *sum_squares_out, long *zero_variances,
                                 int *finite);

/// One tile backward: dx = rstd·(dx̂ − Σdx̂/m − x̂·Σ(dx̂·x̂)/divisor), dx̂ = dy·γ, x̂ recomputed from x with
/// the given mean and rstd per column (or, when given_mean is NULL, the statistics recomputed as forward made
/// them; the float32 lanes always make them again, so x̂ has forward's bits). When sum_dy is not NULL, adds dy and dy·x̂ into sum_dy / sum_dy_xhat at r·sums_row_stride +
/// j·sums_column_stride (sums_column_stride 1: one sum per element; 0: one per row, summed over the tile's columns
/// in four lanes).
void normlab_columns_backward_f32(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                  const double *given_mean, const double *given_rstd, normlab_column_affine affine,
                                  float *dx, double *sum_dy, double *sum_dy_xhat, long sums_row_stride,
                                  long sums_column_stride);
void normlab_columns_backward_f64(const normlab_column_sets *sets, const double *x, const double *dy, long width,
                                  const double *given_mean, const double *given_rstd, normlab_column_affine affine,
                                  double *dx, double *sum_dy, double *sum_dy_xhat, long sums_row_stride,
                                  long sums_column_stride);

/// normlab_columns_backward_f32 for sets of at most eight rows with per-element sums (sums_column_stride 1) kept in
/// float32: dy and dy·x̂ are added into sum_dy / sum_dy_xhat in float32 (the caller adds them into Float64 at least
/// every eight additions). The statistics are always made again from x.
void normlab_columns_backward_f32_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                             long width, normlab_column_affine affine, float *dx, float *sum_dy,
                                             float *sum_dy_xhat, long sums_row_stride);

/// normlab_columns_backward_f32_float_sums for every set size and layout on the block loops (sets of at most eight
/// rows), without the loop of its own that sets of two with γ per element take (column_pairs_f32.c): the same bits.
void normlab_columns_backward_f32_float_sums_general(const normlab_column_sets *sets, const float *x, const float *dy,
                                                     long width, normlab_column_affine affine, float *dx,
                                                     float *sum_dy, float *sum_dy_xhat, long sums_row_stride);

/// Whether normlab_columns_backward_f32_float_sums takes the loop for sets of two (column_pairs_f32.c): two plain rows,
/// centred, γ per element, per-row sums, m and the divisor powers of two.
int normlab_pairs_backward_applies(const normlab_column_sets *sets, normlab_column_affine affine,
                                   long sums_row_stride);
void normlab_pairs_backward_f32_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                           long width, normlab_column_affine affine, float *dx, float *stage_dy,
                                           float *stage_dy_xhat, long sums_row_stride);

/// normlab_columns_backward_f32_float_sums on the general loops (per-position sets of more than four rows: PyDLLib's
/// LayerNorm, a sample's 64 channels at a position). The statistics are always made again from x.
void normlab_columns_backward_f32_tiles_float_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                                   long width, normlab_column_affine affine, float *dx,
                                                   float *sum_dy, float *sum_dy_xhat, long sums_row_stride);

/// Where a float32 pass puts dγ and dβ itself: gamma[j] and beta[j] for column j, each the Float64 sum over the
/// column's rows taken as it is (scaling 0), times factor (1) or divided by it (2), then rounded to float32.
typedef struct normlab_narrowed_sums {
    float *gamma;
    float *beta;
    int scaling;
    double factor;
} normlab_narrowed_sums;

/// normlab_columns_backward_f32 for sets of at most eight rows (BatchNorm per element) with one sum per element: each
/// column's Σdy·x̂ and Σdy, whole in its block, go narrowed to sums->gamma, sums->beta (as normlab_narrow_sums narrows
/// them). The statistics are always made again from x.
void normlab_columns_backward_f32_narrowed_sums(const normlab_column_sets *sets, const float *x, const float *dy,
                                                long width, normlab_column_affine affine, float *dx,
                                                const normlab_narrowed_sums *sums);

/// normlab_columns_backward_f32_narrowed_sums from what forward kept (`normlab_narrowed_statistics`): each column's μ₀,
/// rstd and c, so x̂ = (x − μ₀)·rstd + c without making the statistics again — the same bits, since forward made
/// them from the same x with the same operations. Columns whose shift is not finite (not kept), and layouts other
/// than BatchNorm per element (plain rows, centred sets of 3–8 rows, γ per element shared by a column's rows), run as
/// normlab_columns_backward_f32_narrowed_sums runs them.
void normlab_columns_backward_f32_kept(const normlab_column_sets *sets, const float *x, const float *dy, long width,
                                       normlab_column_affine affine, float *dx, const normlab_narrowed_sums *sums,
                                       const float *first_mean, const float *rstd, const float *shift);

/// normlab_columns_backward_f32 (float32, statistics made again) for the general loops — sets of more than eight rows,
/// or sums per row — from what forward kept: a tile whose columns all have a finite shift takes μ₀, rstd and c from
/// them and sums only Σdx̂ and Σdx̂·(x − μ₀); other tiles and layouts as normlab_columns_backward_f32. The same bits.
void normlab_columns_backward_f32_from_constants(const normlab_column_sets *sets, const float *x, const float *dy,
                                                 long width, normlab_column_affine affine, float *dx, double *sum_dy,
                                                 double *sum_dy_xhat, long sums_row_stride, long sums_column_stride,
                                                 const float *first_mean, const float *rstd, const float *shift);

/// One fold of float32 per-element sums into Float64: target[i] = (sums ? sums[i] : 0) + stage[i] for i < count, and
/// stage[i] = 0 (target may be sums).
void normlab_fold_float_sums(double *target, const double *sums, float *stage, long count);

/// The last fold, narrowed: out[i] = (float)v with v = ((sums ? sums[i] : 0) + stage[i]) in Float64, taken as it is
/// (scaling 0), times factor (1) or divided by it (2) — what the fold then `Float(v / factor)` would give — and
/// stage[i] = 0. For a float32 layer's element-wise dγ and dβ, which would otherwise go through a Float64 array only
/// to be narrowed.
void normlab_fold_float_sums_narrowed(float *out, const double *sums, float *stage, long count, int scaling,
                                      double factor);

/// Float64 sums narrowed as normlab_fold_float_sums_narrowed narrows its folds: out[i] = (float)v with v = sums[i]
/// taken as it is (scaling 0), times factor (1) or divided by it (2). For column sums made whole in one tile, in cache.
void normlab_narrow_sums(float *out, const double *sums, long count, int scaling, double factor);

#endif
