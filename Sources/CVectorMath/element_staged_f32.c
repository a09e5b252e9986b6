#include "element_affine.h"

#include <string.h>

// NormLanes' fused loop (ElementLanes.gradientAndSums) with elementwiseGradientStaged's float32 stages, in C for the
// one thing Swift cannot say: a prefetch. The next run is another sample's row (or BatchNorm's next channel), a jump of
// hundreds of KB every 12.5 KB at (8, 64, 56, 56); the hardware's prefetchers start again at each page of it, and
// its first loads were a third of GroupNorm's and BatchNorm's backward with γ per element. Every value is the same
// lane-wise expression, in the same order, as the Swift loop's, never contracted: the same bits.
#pragma clang fp contract(off)

#include "clones.h"

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

// Macros, not functions: a function returning eight floats would change the ABI between the two builds. Not
// column_lanes_f32.h's: its splat8 adds the value to +0, turning a −0 constant into +0, where the Swift lanes' splat
// (SIMD8(repeating:)) keeps it — and x − (−0) and x − (+0) differ when x is −0.
#define load8(p) ({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })
#define store8(p, v) do { v8f n_ = (v); memcpy((p), &n_, sizeof n_); } while (0)
#define splat8(f) ((v8f){(f), (f), (f), (f), (f), (f), (f), (f)})

// 512 floats (2 KB, 32 of the loop's steps) ahead in each of the next run's streams: BatchNorm `affine=element`
// backward 0.71 ms median with 512, 0.78 with 128, 0.73 with 1024 (REPL, (8, 64, 56, 56), one thread).
enum { NEXT_AHEAD = 512 };

// dx 256 floats (1 KB) ahead, fetched for writing, so that the stores do not wait for their lines: GroupNorm 32
// `affine=element` backward 0.644/0.681 -> 0.581/0.633 ms min/median over 16 rounds (another 8: 0.536/0.575 ->
// 0.517/0.600; 128 and 512 floats ahead no better), two threads 0.289/0.296 -> 0.279/0.284.
enum { DX_AHEAD = 256 };

// Eight elements of this run: dx, and dy·x̂ and dy added into the stages.
#define GRADIENT_STEP(i)                                                                                              \
    {                                                                                                                 \
        const v8f d = load8(dy + (i)), h = (load8(x + (i)) - hi) * rv - lv;                                           \
        store8(dx + (i), rv * ((load8(gamma + (i)) * d - mv) - h * pv));                                              \
        store8(stage_gamma + (i), load8(stage_gamma + (i)) + d * h);                                                  \
        store8(stage_beta + (i), load8(stage_beta + (i)) + d);                                                        \
    }

// Sixteen elements of the next run's sums of dx̂ = dy·γ and dx̂·x̂, in two accumulators.
#define SUMS_STEP(i)                                                                                                  \
    {                                                                                                                 \
        const v8f g0 = load8(next_dy + (i)) * load8(next_gamma + (i));                                                \
        const v8f g1 = load8(next_dy + (i) + 8) * load8(next_gamma + (i) + 8);                                        \
        d0 += g0;                                                                                                     \
        d1 += g1;                                                                                                     \
        dx0 += g0 * ((load8(next_x + (i)) - nhi) * nrv - nlv);                                                        \
        dx1 += g1 * ((load8(next_x + (i) + 8) - nhi) * nrv - nlv);                                                    \
    }

// The eight lanes pairwise to four, widened: FloatLanes.fold8.
#define fold8(v) ({ const v8f f_ = (v); __builtin_convertvector(__builtin_shufflevector(f_, f_, 0, 1, 2, 3) +          \
                                                            __builtin_shufflevector(f_, f_, 4, 5, 6, 7), v4d); })

NORMLAB_CLONES
void normlab_element_gradient_and_sums_staged_f32(const float *dy, const float *x, float *dx, const float *gamma,
                                                  long count, const float constants[5], float *stage_gamma,
                                                  float *stage_beta, const float *next_dy, const float *next_x,
                                                  const float *next_gamma, const float next_constants[3],
                                                  double sums[2]) {
    const float high = constants[0], r = constants[1], lr = constants[2], mt = constants[3], p = constants[4];
    const float next_high = next_constants[0], nr = next_constants[1], nlr = next_constants[2];
    const v8f hi = splat8(high), rv = splat8(r), lv = splat8(lr), mv = splat8(mt), pv = splat8(p);
    const v8f nhi = splat8(next_high), nrv = splat8(nr), nlv = splat8(nlr);
    v4d wide_d = {0, 0, 0, 0}, wide_dx = {0, 0, 0, 0};
    long i = 0;
    while (i + 16 <= count) {
        const long whole = (count - i) & ~15L, end = i + (whole < 128 ? whole : 128);
        v8f d0 = splat8(0), d1 = splat8(0), dx0 = splat8(0), dx1 = splat8(0);
        for (; i < end; i += 16) {
            __builtin_prefetch(next_x + i + NEXT_AHEAD);
            __builtin_prefetch(next_dy + i + NEXT_AHEAD);
            __builtin_prefetch(dx + i + DX_AHEAD, 1);
            GRADIENT_STEP(i)
            GRADIENT_STEP(i + 8)
            SUMS_STEP(i)
        }
        wide_d += fold8(d0 + d1);
        wide_dx += fold8(dx0 + dx1);
    }
    double sum_d = (wide_d[0] + wide_d[1]) + (wide_d[2] + wide_d[3]);
    double sum_dx = (wide_dx[0] + wide_dx[1]) + (wide_dx[2] + wide_dx[3]);
    for (long j = i; j < count; j++) {
        const float g = next_dy[j] * next_gamma[j];
        sum_d += (double)g;
        sum_dx += (double)(g * ((next_x[j] - next_high) * nr - nlr));
    }
    for (; i + 8 <= count; i += 8) GRADIENT_STEP(i)
    for (; i < count; i++) {
        const float h = (x[i] - high) * r - lr;
        dx[i] = r * ((gamma[i] * dy[i] - mt) - h * p);
        stage_gamma[i] = stage_gamma[i] + dy[i] * h;
        stage_beta[i] = stage_beta[i] + dy[i];
    }
    sums[0] = sum_d;
    sums[1] = sum_dx;
}
