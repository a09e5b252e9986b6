/// Memory tuning for a process that computes on big tensors again and again (the REPL, the benchmark).
public enum MemoryTuning {
    /// glibc hands large blocks back to the kernel on free and takes fresh, zero-filled pages on the next
    /// allocation: every forward pass then pays a page fault per 4 KiB of output (about a third of its time at
    /// (8, 64, 56, 56), seen with perf). Keeping blocks up to 1 GiB in the heap lets the next pass reuse them.
    public static func keepLargeBlocks() {
        #if os(Linux)
        _ = glibcMallopt(-3, 1 << 30)  // M_MMAP_THRESHOLD
        _ = glibcMallopt(-1, 1 << 30)  // M_TRIM_THRESHOLD
        #endif
    }
}

#if os(Linux)
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
