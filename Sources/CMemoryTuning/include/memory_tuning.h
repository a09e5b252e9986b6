#ifndef NORMLAB_MEMORY_TUNING_H
#define NORMLAB_MEMORY_TUNING_H

/// Memory tuning for a process that computes on big tensors again and again (the REPL, the benchmark).
///
/// glibc hands large blocks back to the kernel on free and takes fresh, zero-filled pages on the next
/// allocation: every forward pass then pays a page fault per 4 KiB of output (about a third of its time at
/// (8, 64, 56, 56), seen with perf). Keeping blocks up to 1 GiB in the heap lets the next pass reuse them.
/// Elsewhere (macOS's allocator has no such thresholds) this does nothing.
void normlab_keep_large_blocks(void);

/// 1 when `normlab_keep_large_blocks` sets glibc's thresholds (it was built against glibc), 0 where it does nothing.
int normlab_memory_tuning_applies(void);

#endif
