#ifndef NORMLAB_F16C_ROUNDING_H
#define NORMLAB_F16C_ROUNDING_H

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define NORMLAB_F16C 1

// Eight floats rounded to float16 and back: F16C's conversions round to nearest even, keep subnormals and send
// overflow to inf, so the round trip is exactly float16 rounding. Eight results that are all finite (the common case)
// cost one test more; only a vector with a NaN, an ∞ or an overflow is counted (`bad`: not finite after, `over`:
// finite before) and has its NaNs put back as they were (the conversion would quieten them and cut their payload).
__attribute__((target("avx2,f16c"))) static inline __m256 normlab_round8_float16(__m256 x, long *over, long *bad) {
    const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i largest_finite = _mm256_set1_epi32(0x7f7fffff), infinity = _mm256_set1_epi32(0x7f800000);
    __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m256i not_finite =
        _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(r), magnitude_mask), largest_finite);
    if (__builtin_expect(!_mm256_testz_si256(not_finite, not_finite), 0)) {
        __m256i magnitude = _mm256_and_si256(_mm256_castps_si256(x), magnitude_mask);
        __m256i nan_in = _mm256_cmpgt_epi32(magnitude, infinity);
        __m256i finite_in = _mm256_cmpgt_epi32(infinity, magnitude);
        r = _mm256_blendv_ps(r, x, _mm256_castsi256_ps(nan_in));
        *bad += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(not_finite)));
        *over += __builtin_popcount(
            (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_and_si256(not_finite, finite_in))));
    }
    return r;
}

static inline int normlab_has_f16c(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"); }
#endif

#endif
