#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>

// xgetbv by its encoding: the intrinsic needs -mxsave, and this file is built without target flags.
static unsigned long long read_xcr0(void) {
    unsigned int low, high;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(low), "=d"(high) : "c"(0));
    return ((unsigned long long)high << 32) | low;
}

int normlab_cpu_runs_haswell_code(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned int fma = 1u << 12, movbe = 1u << 22, popcnt = 1u << 23, osxsave = 1u << 27, avx = 1u << 28,
                       f16c = 1u << 29;
    const unsigned int leaf1 = fma | movbe | popcnt | osxsave | avx | f16c;
    if ((ecx & leaf1) != leaf1) return 0;
    // The OS must save the XMM and YMM state across context switches, or AVX registers get corrupted.
    if ((read_xcr0() & 0x6) != 0x6) return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned int bmi1 = 1u << 3, avx2 = 1u << 5, bmi2 = 1u << 8;
    if ((ebx & (bmi1 | avx2 | bmi2)) != (bmi1 | avx2 | bmi2)) return 0;
    if (!__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned int lzcnt = 1u << 5;
    return (ecx & lzcnt) != 0;
}
#else
int normlab_cpu_runs_haswell_code(void) { return 0; }
#endif
