#ifndef NORMLAB_CLONES_H
#define NORMLAB_CLONES_H

// A function compiled twice, for AVX2 and for the baseline CPU; the loader picks one once, through an ifunc (Linux on
// x86-64). Elsewhere, one build.
#if defined(__x86_64__) && defined(__linux__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define NORMLAB_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef NORMLAB_CLONES
#define NORMLAB_CLONES
#endif

#endif
