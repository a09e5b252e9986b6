#ifndef NORMLAB_CLONES_H
#define NORMLAB_CLONES_H

// A function compiled three times, for AVX-512F, for AVX2 and for the baseline CPU; the loader picks one once, through
// an ifunc (Linux on x86-64). Elsewhere, one build. The vectors of sixteen floats are one AVX-512 register: on this
// Zen 5 (512-bit units) `time step` at (8, 64, 56, 56), min of 8 interleaved rounds, PyDLLib's BatchNorm 0.93 -> 0.79
// ms, GroupNorm 1.05 -> 0.97, LayerNorm 1.50 -> 1.47. Every file turns contraction off (AVX-512F brings FMA with it),
// so each clone gives the same bits.
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define NORMLAB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef NORMLAB_CLONES
#define NORMLAB_CLONES
#endif

#endif
