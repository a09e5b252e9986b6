#ifndef NORMLAB_CPU_FEATURES_H
#define NORMLAB_CPU_FEATURES_H

/// 1 when this x86-64 CPU, and the operating system, support every feature clang's `-target-cpu haswell` may use
/// (AVX, AVX2, FMA, BMI1, BMI2, F16C, MOVBE, LZCNT, POPCNT, with the YMM registers saved by the OS); 0 otherwise,
/// and always 0 on other architectures. Asks the CPU (cpuid, xgetbv): no file, no OS-specific call.
int normlab_cpu_runs_haswell_code(void);

#endif
