// Float64 sums of float32 terms brought back to float32: the folds of float32 stages into Float64 sums (and their
// last fold narrowed straight to a float32 result), and whole column sums narrowed (column_sets.h).
#include "column_lanes_f32.h"

#pragma clang fp contract(off)

#include "clones.h"

// With or without sums as separate loops (here and below): `sums ? sums[i] : 0` in one loop became a masked load
// (vmaskmovpd) from sums, which with sums NULL — an all-false mask at address 0 — cost about 15 ns an element on this
// machine's CPU (a float32 layer's element-wise dγ, dβ folded once at batch 8: 6 ms a backward pass).
static inline __attribute__((always_inline)) void fold(double *target, const double *sums, float *stage, long count,
                                                       const int has_sums) {
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        d8 folded = widen8(load8(stage + i));
        if (has_sums) folded = wadd8(wload8(sums + i), folded);
        else folded = wadd8(wzero8, folded);  // 0 + s, as the Float64 sums start
        wstore8(target + i, folded);
        store8(stage + i, splat8(0));
    }
    for (; i < count; i++) {
        target[i] = (has_sums ? sums[i] : 0.0) + (double)stage[i];
        stage[i] = 0;
    }
}

NORMLAB_CLONES
void normlab_fold_float_sums(double *target, const double *sums, float *stage, long count) {
    if (sums) fold(target, sums, stage, count, 1);
    else fold(target, sums, stage, count, 0);
}

static inline __attribute__((always_inline)) void fold_narrowed(float *restrict out, const double *restrict sums,
                                                                float *restrict stage, long count, const int has_sums,
                                                                const int scaling, double factor) {
    for (long i = 0; i < count; i++) {
        double v = (has_sums ? sums[i] : 0.0) + (double)stage[i];  // 0 + s, as the Float64 sums start
        v = scaling == 0 ? v : scaling == 1 ? v * factor : v / factor;
        out[i] = (float)v;
        stage[i] = 0;
    }
}

#define FOLD_NARROWED(has_sums)                                                                                       \
    switch (scaling) {                                                                                                \
    case 0: fold_narrowed(out, sums, stage, count, has_sums, 0, factor); break;                                       \
    case 1: fold_narrowed(out, sums, stage, count, has_sums, 1, factor); break;                                       \
    default: fold_narrowed(out, sums, stage, count, has_sums, 2, factor); break;                                      \
    }

NORMLAB_CLONES
void normlab_fold_float_sums_narrowed(float *out, const double *sums, float *stage, long count, int scaling,
                                      double factor) {
    if (sums) {
        FOLD_NARROWED(1)
    } else {
        FOLD_NARROWED(0)
    }
}

static inline __attribute__((always_inline)) void narrow_sums(float *restrict out, const double *restrict sums,
                                                              long count, const int scaling, double factor) {
    for (long i = 0; i < count; i++) {
        double v = sums[i];
        v = scaling == 0 ? v : scaling == 1 ? v * factor : v / factor;
        out[i] = (float)v;
    }
}

NORMLAB_CLONES
void normlab_narrow_sums(float *out, const double *sums, long count, int scaling, double factor) {
    switch (scaling) {
    case 0: narrow_sums(out, sums, count, 0, factor); break;
    case 1: narrow_sums(out, sums, count, 1, factor); break;
    default: narrow_sums(out, sums, count, 2, factor); break;
    }
}
