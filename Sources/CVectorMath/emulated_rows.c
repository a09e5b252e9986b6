#include "emulated_rows.h"
#include "vector_math.h"

// Lane-wise IEEE float operations in the order the scalar loops make them; no fused multiply-adds.
#pragma clang fp contract(off)

#include "clones.h"
#include "f16c_rounding.h"

// Elements a loop writes before they are rounded to bfloat16 (or to float16 without F16C): 8 KB, still in L1.
#define ROUNDING_CHUNK 2048

// Strides known at compile time (0: one value for the row, 1: one per position), so that clang vectorises each form.
static inline __attribute__((always_inline)) void
normalize_row(const float *x, float *y, long count, const float *mean, const float *rstd, const long stat_stride,
              const float *gamma, const long gamma_stride, const float *beta, const long beta_stride) {
    for (long s = 0; s < count; s++) {
        float h = (x[s] - mean[s * stat_stride]) * rstd[s * stat_stride];
        y[s] = h * gamma[s * gamma_stride] + beta[s * beta_stride];
    }
}

static inline __attribute__((always_inline)) void
gradient_row(const float *x, const float *dy, float *dx, long count, const float *mean, const float *rstd,
             const float *mean_term, const float *projection, const long stat_stride, const float *gamma,
             const long gamma_stride) {
    for (long s = 0; s < count; s++) {
        float dh = dy[s] * gamma[s * gamma_stride];
        float h = (x[s] - mean[s * stat_stride]) * rstd[s * stat_stride];
        float inner = (dh - mean_term[s * stat_stride]) - h * projection[s * stat_stride];
        dx[s] = rstd[s * stat_stride] * inner;
    }
}

#define STRIDES3(S, G, B, CALL)                                                                                      \
    if (S == 0) {                                                                                                     \
        if (G == 0) CALL(0, 0, 0);                                                                                    \
        else if (B == 0) CALL(0, 1, 0);                                                                               \
        else CALL(0, 1, 1);                                                                                           \
    } else {                                                                                                          \
        if (G == 0) CALL(1, 0, 0);                                                                                    \
        else if (B == 0) CALL(1, 1, 0);                                                                               \
        else CALL(1, 1, 1);                                                                                           \
    }

NORMLAB_CLONES
static void normalize_rows(const float *x, float *y, long count, const float *mean, const float *rstd,
                           long stat_stride, const float *gamma, long gamma_stride, const float *beta,
                           long beta_stride) {
#define NORMALIZE(S, G, B) normalize_row(x, y, count, mean, rstd, S, gamma, G, beta, B)
    STRIDES3(stat_stride, gamma_stride, beta_stride, NORMALIZE)
#undef NORMALIZE
}

NORMLAB_CLONES
static void gradient_rows(const float *x, const float *dy, float *dx, long count, const float *mean,
                          const float *rstd, const float *mean_term, const float *projection, long stat_stride,
                          const float *gamma, long gamma_stride) {
#define GRADIENT(S, G, B) gradient_row(x, dy, dx, count, mean, rstd, mean_term, projection, S, gamma, G)
    STRIDES3(stat_stride, gamma_stride, 0, GRADIENT)
#undef GRADIENT
}

static void round_chunk(float *values, long count, int round_to, long counts[2]) {
    long over = 0, bad = 0;
    if (round_to == NORMLAB_ROUND_FLOAT16) normlab_round_float16(values, count, &over, &bad);
    else normlab_round_bfloat16(values, count, &over, &bad);
    counts[0] += over;
    counts[1] += bad;
}

#ifdef NORMLAB_F16C
// The loops with float16 rounding in the same pass: the conversions overlap the loads and stores, where a second
// pass over a row in L1 cost as much again (a (8, 64, 56, 56) forward's y: 0.29 ms fused, 0.43 in two passes).
#define OPERAND(p, stride) ((stride) ? _mm256_loadu_ps((p) + s) : _mm256_set1_ps((p)[0]))

__attribute__((target("avx2,f16c"))) static inline __attribute__((always_inline)) void
normalize_row_float16(const float *x, float *y, long count, const float *mean, const float *rstd,
                      const long stat_stride, const float *gamma, const long gamma_stride, const float *beta,
                      const long beta_stride, long counts[2]) {
    long s = 0, over = 0, bad = 0;
    for (; s + 8 <= count; s += 8) {
        __m256 h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + s), OPERAND(mean, stat_stride)),
                                 OPERAND(rstd, stat_stride));
        __m256 v = _mm256_add_ps(_mm256_mul_ps(h, OPERAND(gamma, gamma_stride)), OPERAND(beta, beta_stride));
        _mm256_storeu_ps(y + s, normlab_round8_float16(v, &over, &bad));
    }
    counts[0] += over;
    counts[1] += bad;
    if (s < count) {
        normalize_row(x + s, y + s, count - s, mean + s * stat_stride, rstd + s * stat_stride, stat_stride,
                      gamma + s * gamma_stride, gamma_stride, beta + s * beta_stride, beta_stride);
        round_chunk(y + s, count - s, NORMLAB_ROUND_FLOAT16, counts);
    }
}

__attribute__((target("avx2,f16c"))) static void
normalize_rows_float16(const float *x, float *y, long count, const float *mean, const float *rstd, long stat_stride,
                       const float *gamma, long gamma_stride, const float *beta, long beta_stride, long counts[2]) {
#define NORMALIZE(S, G, B) normalize_row_float16(x, y, count, mean, rstd, S, gamma, G, beta, B, counts)
    STRIDES3(stat_stride, gamma_stride, beta_stride, NORMALIZE)
#undef NORMALIZE
}

__attribute__((target("avx2,f16c"))) static inline __attribute__((always_inline)) void
gradient_row_float16(const float *x, const float *dy, float *dx, long count, const float *mean, const float *rstd,
                     const float *mean_term, const float *projection, const long stat_stride, const float *gamma,
                     const long gamma_stride, long counts[2]) {
    long s = 0, over = 0, bad = 0;
    for (; s + 8 <= count; s += 8) {
        __m256 dh = _mm256_mul_ps(_mm256_loadu_ps(dy + s), OPERAND(gamma, gamma_stride));
        __m256 r = OPERAND(rstd, stat_stride);
        __m256 h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + s), OPERAND(mean, stat_stride)), r);
        __m256 inner = _mm256_sub_ps(_mm256_sub_ps(dh, OPERAND(mean_term, stat_stride)),
                                     _mm256_mul_ps(h, OPERAND(projection, stat_stride)));
        _mm256_storeu_ps(dx + s, normlab_round8_float16(_mm256_mul_ps(r, inner), &over, &bad));
    }
    counts[0] += over;
    counts[1] += bad;
    if (s < count) {
        long t = s * stat_stride;
        gradient_row(x + s, dy + s, dx + s, count - s, mean + t, rstd + t, mean_term + t, projection + t, stat_stride,
                     gamma + s * gamma_stride, gamma_stride);
        round_chunk(dx + s, count - s, NORMLAB_ROUND_FLOAT16, counts);
    }
}

__attribute__((target("avx2,f16c"))) static void
gradient_rows_float16(const float *x, const float *dy, float *dx, long count, const float *mean, const float *rstd,
                      const float *mean_term, const float *projection, long stat_stride, const float *gamma,
                      long gamma_stride, long counts[2]) {
#define GRADIENT(S, G, B)                                                                                             \
    gradient_row_float16(x, dy, dx, count, mean, rstd, mean_term, projection, S, gamma, G, counts)
    STRIDES3(stat_stride, gamma_stride, 0, GRADIENT)
#undef GRADIENT
}
#undef OPERAND
#endif

void normlab_emulated_normalize_f32(const float *x, float *y, long count, const float *mean, const float *rstd,
                                    long stat_stride, const float *gamma, long gamma_stride, const float *beta,
                                    long beta_stride, int round_to, long counts[2]) {
#ifdef NORMLAB_F16C
    if (round_to == NORMLAB_ROUND_FLOAT16 && normlab_has_f16c()) {
        normalize_rows_float16(x, y, count, mean, rstd, stat_stride, gamma, gamma_stride, beta, beta_stride, counts);
        return;
    }
#endif
    for (long start = 0; start < count; start += ROUNDING_CHUNK) {
        long n = count - start < ROUNDING_CHUNK ? count - start : ROUNDING_CHUNK;
        long t = start * stat_stride;
        normalize_rows(x + start, y + start, n, mean + t, rstd + t, stat_stride, gamma + start * gamma_stride,
                       gamma_stride, beta + start * beta_stride, beta_stride);
        if (round_to != NORMLAB_ROUND_NONE) round_chunk(y + start, n, round_to, counts);
    }
}

void normlab_emulated_gradient_f32(const float *x, const float *dy, float *dx, long count, const float *mean,
                                   const float *rstd, const float *mean_term, const float *projection,
                                   long stat_stride, const float *gamma, long gamma_stride, int round_to,
                                   long counts[2]) {
#ifdef NORMLAB_F16C
    if (round_to == NORMLAB_ROUND_FLOAT16 && normlab_has_f16c()) {
        gradient_rows_float16(x, dy, dx, count, mean, rstd, mean_term, projection, stat_stride, gamma, gamma_stride,
                              counts);
        return;
    }
#endif
    for (long start = 0; start < count; start += ROUNDING_CHUNK) {
        long n = count - start < ROUNDING_CHUNK ? count - start : ROUNDING_CHUNK;
        long t = start * stat_stride;
        gradient_rows(x + start, dy + start, dx + start, n, mean + t, rstd + t, mean_term + t, projection + t,
                      stat_stride, gamma + start * gamma_stride, gamma_stride);
        if (round_to != NORMLAB_ROUND_NONE) round_chunk(dx + start, n, round_to, counts);
    }
}
