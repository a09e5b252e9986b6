#include "memory_tuning.h"

// A glibc header first: __GLIBC__ is defined by <features.h>, which every glibc header includes. (Without one, the
// test below was false on glibc too, mallopt never ran, and every pass paid its page faults again: 3–4× slower.)
#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void normlab_keep_large_blocks(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

int normlab_memory_tuning_applies(void) {
#if defined(__GLIBC__)
    return 1;
#else
    return 0;
#endif
}
