#include "memory_tuning.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void normlab_keep_large_blocks(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
