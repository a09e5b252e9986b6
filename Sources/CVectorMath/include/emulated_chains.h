#ifndef NORMLAB_EMULATED_CHAINS_H
#define NORMLAB_EMULATED_CHAINS_H

/// Eight float32 chains of additions side by side, one per lane, for the emulating kernel's sums (EmulatedWalk):
/// lane k adds the elements of its rows in order — row r is `count` contiguous floats at x + offsets[8·r + k], with
/// μ = mean[8·r + k] and rstd = rstd[8·r + k], x̂ = (x − μ)·rstd — each step the float32 operations one chain makes
/// alone (lane-wise IEEE, never contracted), so every lane's sums have the bits of the scalar chain.
///   kind 0, a set's gradient sums: g = dy·γ (γ at gamma[8·r + k][s·gamma_stride]), a += g, b += g·x̂.
///   kind 1, a parameter's gradients: a += dy·x̂, b += dy (gamma unused).
///   kind 2, a set's sum: a += x.   kind 3, its squares about μ: a += (x − μ)².   kind 4, one pass: a += x, b += x².
///   kind 6, a set's sum and the sum of its magnitudes: a += x, b += |x|.
///   (Kinds 2–4 and 6 read neither dy, γ nor rstd, and 2, 4 and 6 not μ.)
/// a and b start at +0; gamma_stride is 0 (one γ per row) or 1 (one per element).
void normlab_emulated_chains8_f32(int kind, const float *x, const float *dy, const long *offsets, long rows,
                                  long count, const float *mean, const float *rstd, const float *const *gamma,
                                  long gamma_stride, float a[8], float b[8]);

/// Kinds 0 and 1 in one pass over x and dy, for sets of one sample's channels with γ per channel (gamma_stride 0):
/// a and b are kind 0's sums of each lane's set, and row r of lane k also adds dy·x̂ and dy to parameter_a[8·r + k]
/// and parameter_b[8·r + k] — the chains of that row's channel, carried in from the sample before and written back
/// (kind 1's steps, on the x̂ kind 0 makes). A channel's chain then takes its samples in order if the caller walks
/// them so.
void normlab_emulated_fused_sums8_f32(const float *x, const float *dy, const long *offsets, long rows, long count,
                                      const float *mean, const float *rstd, const float *const *gamma, float a[8],
                                      float b[8], float *parameter_a, float *parameter_b);

/// Kinds 2, 3 and 4 (a statistics walk's first pass over x) with, on the way, each lane's Σd in exact[k] and Σd²
/// in exact[8 + k] in Float64, d = x − shift[k], in no particular order: the exact statistics that judge the emulated
/// ones (`EmulatedKernels.exactStatistics`) without a pass of their own.
void normlab_emulated_chains8_exact_f32(int kind, const float *x, const long *offsets, long rows, long count,
                                        const float *mean, float a[8], float b[8], const double shift[8],
                                        double exact[16]);

/// Kind 1 (a parameter's gradients) over columns: for each row r (count floats at x + offsets[r], dy likewise, its
/// statistics from mean + stat_offsets[r] and rstd + stat_offsets[r], one for the row (stat_stride 0) or one per
/// position (1)), a[s] += dy·x̂ and b[s] += dy at every position s, rows in order; a and b start at +0 (written here).
/// Each column's chain is the scalar chain, lane-wise IEEE, never contracted.
void normlab_emulated_column_parameters_f32(const float *x, const float *dy, const long *offsets,
                                            const long *stat_offsets, long rows, long count, const float *mean,
                                            const float *rstd, long stat_stride, float *a, float *b);

#endif
