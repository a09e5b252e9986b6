#include "vector_math.h"

#include <math.h>

// No contraction into fused operations: each step is rounded as Swift rounds it.
#pragma clang fp contract(off)

#if defined(__has_builtin)
#if __has_builtin(__builtin_elementwise_sqrt)
#define NORMLAB_SQRT __builtin_elementwise_sqrt  // no errno, so the loop vectorises
#endif
#endif
#ifndef NORMLAB_SQRT
#define NORMLAB_SQRT sqrt
#endif

void normlab_reciprocal_square_roots(const double *restrict variances, double eps, double *restrict out, long count) {
    for (long i = 0; i < count; i++) {
        out[i] = 1.0 / NORMLAB_SQRT(variances[i] + eps);
    }
}

// Rounding float32 values to float16 or bfloat16 in place, round to nearest, ties to even, on the bit patterns
// (see FormatRounding.swift). Written as plain loops of selects so that clang vectorises them; Swift's SIMD
// masks lowered to one lane at a time.
#include <stdint.h>
#include <string.h>

typedef uint32_t __attribute__((may_alias)) normlab_bits;

// NORMLAB_CLONES (clones.h): eight lanes where the CPU has AVX2 (chosen once, at load time, through an ifunc), four elsewhere.
#include "clones.h"

NORMLAB_CLONES
void normlab_round_bfloat16(float *values, long count, long *overflowed, long *non_finite) {
    normlab_bits *bits = (normlab_bits *)values;
    uint32_t over = 0, bad = 0;  // 32-bit lanes vectorise; callers pass sets far below 2^32 elements
    for (long i = 0; i < count; i++) {
        uint32_t b = bits[i];
        uint32_t magnitude = b & 0x7fffffffu;
        uint32_t r = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
        r = magnitude > 0x7f800000u ? (b | 0x00400000u) : r;  // NaN stays NaN (quiet)
        r = magnitude == 0x7f800000u ? b : r;                 // ±inf stays
        uint32_t infinite = (r & 0x7fffffffu) >= 0x7f800000u;
        bad += infinite;
        over += infinite & (magnitude < 0x7f800000u);
        bits[i] = r;
    }
    *overflowed = (long)over;
    *non_finite = (long)bad;
}

#include "f16c_rounding.h"

#ifdef NORMLAB_F16C
// `normlab_round8_float16` in place: two conversions and a test per eight values (0.13 ns a value in L1 where the
// loop that always counted took 0.18; the two agree on all 2³² floats).
__attribute__((target("avx2,f16c")))
static void round_float16_f16c(float *values, long count, long *overflowed, long *non_finite) {
    long over = 0, bad = 0, i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(values + i, normlab_round8_float16(_mm256_loadu_ps(values + i), &over, &bad));
    long tail_over = 0, tail_bad = 0;
    if (i < count) {
        float rest[8];
        long n = count - i;
        for (long k = 0; k < 8; k++) rest[k] = k < n ? values[i + k] : 0.0f;
        round_float16_f16c(rest, 8, &tail_over, &tail_bad);
        for (long k = 0; k < n; k++) values[i + k] = rest[k];
    }
    *overflowed = over + tail_over;
    *non_finite = bad + tail_bad;
}
#endif

typedef uint64_t __attribute__((may_alias)) normlab_wide_bits;

// A per-element BatchNorm's statistics are as many as a sample's elements (200,704 at (8, 64, 56, 56)): the loop in
// Swift, two doubles at a time without AVX, was a tenth of PyDLLib BatchNorm's REPL forward.
NORMLAB_CLONES
void normlab_blend_f32(const float *old, const float *batch, float *out, long count, double keep, double momentum) {
    for (long i = 0; i < count; i++) out[i] = (float)(keep * (double)old[i] + momentum * (double)batch[i]);
}

NORMLAB_CLONES
void normlab_blend_f64(const double *old, const double *batch, double *out, long count, double keep, double momentum) {
    for (long i = 0; i < count; i++) out[i] = keep * old[i] + momentum * batch[i];
}

// .grad's running sums (NormLayer.backward): γ and β per element are a sample's size, and the Swift loop ran four
// floats at a time without AVX.
NORMLAB_CLONES
void normlab_add_into_f32(float *sum, const float *values, long count) {
    for (long i = 0; i < count; i++) sum[i] = sum[i] + values[i];
}

NORMLAB_CLONES
void normlab_add_into_f64(double *sum, const double *values, long count) {
    for (long i = 0; i < count; i++) sum[i] = sum[i] + values[i];
}

// An exponent of all ones (∞ or NaN) anywhere, on the bits: integer operations with no chain of float additions
// (x − x summed in Swift's SIMD lanes waited on each addition; with this, BatchNorm eval's forward, which checks y
// row by row, went from 0.44 to 0.32 ms at (8, 64, 56, 56)).
NORMLAB_CLONES
int normlab_has_non_finite_f32(const float *values, long count) {
    const normlab_bits *bits = (const normlab_bits *)values;
    uint32_t found = 0;
    for (long i = 0; i < count; i++) found |= (bits[i] & 0x7f800000u) == 0x7f800000u;
    return found != 0;
}

NORMLAB_CLONES
int normlab_has_non_finite_f64(const double *values, long count) {
    const normlab_wide_bits *bits = (const normlab_wide_bits *)values;
    uint64_t found = 0;
    for (long i = 0; i < count; i++) found |= (bits[i] & 0x7ff0000000000000u) == 0x7ff0000000000000u;
    return found != 0;
}

NORMLAB_CLONES
void normlab_round_float16_portable(float *values, long count, long *overflowed, long *non_finite) {
    normlab_bits *bits = (normlab_bits *)values;
    uint32_t over = 0, bad = 0;
    for (long i = 0; i < count; i++) {
        uint32_t b = bits[i];
        uint32_t sign = b & 0x80000000u, magnitude = b & 0x7fffffffu;
        uint32_t r = (magnitude + 0xfffu + ((magnitude >> 13) & 1u)) & 0xffffe000u;
        r = r > 0x477fe000u ? 0x7f800000u : r;  // past 65504
        float small;
        memcpy(&small, &magnitude, 4);
        float stepped = (small + 0.5f) - 0.5f;  // spacing 2^-24 near 0.5: float16's subnormal step
        uint32_t subnormal;
        memcpy(&subnormal, &stepped, 4);
        r = magnitude < 0x38800000u ? subnormal : r;  // below 2^-14
        r = magnitude >= 0x7f800000u ? magnitude : r;
        r |= sign;
        uint32_t infinite = (r & 0x7fffffffu) >= 0x7f800000u;
        bad += infinite;
        over += infinite & (magnitude < 0x7f800000u);
        bits[i] = r;
    }
    *overflowed = (long)over;
    *non_finite = (long)bad;
}

void normlab_round_float16(float *values, long count, long *overflowed, long *non_finite) {
#ifdef NORMLAB_F16C
    if (normlab_has_f16c()) {
        round_float16_f16c(values, count, overflowed, non_finite);
        return;
    }
#endif
    normlab_round_float16_portable(values, count, overflowed, non_finite);
}

// Four Float64 lanes twice over, added in any order: the exact statistics only judge the emulated ones.
NORMLAB_CLONES
void normlab_add_shifted_sums_f32(const float *x, long count, double shift, double *sum, double *square) {
    typedef float f4 __attribute__((vector_size(16)));
    typedef double d4 __attribute__((vector_size(32)));
    d4 s0 = {0, 0, 0, 0}, s1 = s0, q0 = s0, q1 = s0;
    const d4 by = {shift, shift, shift, shift};
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        f4 a, b;
        memcpy(&a, x + i, sizeof a);
        memcpy(&b, x + i + 4, sizeof b);
        d4 da = __builtin_convertvector(a, d4) - by, db = __builtin_convertvector(b, d4) - by;
        s0 += da;
        s1 += db;
        q0 += da * da;
        q1 += db * db;
    }
    d4 s = s0 + s1, q = q0 + q1;
    double total = (s[0] + s[1]) + (s[2] + s[3]), squares = (q[0] + q[1]) + (q[2] + q[3]);
    for (; i < count; i++) {
        double d = (double)x[i] - shift;
        total += d;
        squares += d * d;
    }
    *sum += total;
    *square += squares;
}
