import CMemoryTuning
import Testing

/// The executables keep large blocks in glibc's heap; without it every pass pays its page faults again (3–4× slower,
/// measured when a missing include made the C shim skip mallopt on glibc).
@Suite struct MemoryTuningTests {
    @Test func largeBlocksAreKeptOnGlibc() {
        #if os(Linux) && canImport(Glibc)
        #expect(normlab_memory_tuning_applies() == 1)
        #endif
        normlab_keep_large_blocks()
    }
}
