import Dispatch
#if os(Linux)
import Glibc
import Synchronization
#endif

/// Runs a pass's chunks on the calling thread and on long-lived worker threads.
///
/// Why not `DispatchQueue.concurrentPerform`: on Linux its second worker takes about as long to start as a whole
/// pass at (8, 64, 56, 56) takes to run (measured here: two 0.3 ms jobs took 0.61 ms with it, 0.57 ms one after the
/// other). These workers poll for new work for 5 ms after each job, as OpenMP's do, so the
/// backward that follows a forward finds them awake; then they sleep on a condition variable.
///
/// Chunks are fixed ranges claimed in any order, so results do not depend on which thread runs which chunk; a job
/// posted while another runs is run on its caller's thread alone.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    #if os(Linux)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    /// Bumped (under `mutex`) when a job is posted; workers poll it without the lock.
    private let generation = Atomic<Int>(0)
    /// Chunks of the current job not yet finished; the posting thread polls it without the lock.
    private let pending = Atomic<Int>(0)
    // Guarded by `mutex`.
    private var workers = 0
    private var sleepers = 0
    /// One job at a time: NormKit may be called from several threads at once (the tests are).
    private var busy = false
    private var job: (@Sendable (Int) -> Void)?
    private var nextChunk = 0
    private var chunkCount = 0
    /// More workers than the other cores would only take turns with the posting thread.
    private let maximumWorkers = max(0, min(63, sysconf(Int32(_SC_NPROCESSORS_ONLN)) - 1))
    /// How long a worker polls for the next job before it sleeps: well over the gap between a forward and its
    /// backward, or between the passes of a training loop.
    private let pollNanoseconds: UInt64 = 5_000_000

    private init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        wake.initialize(to: pthread_cond_t())
        pthread_cond_init(wake, nil)
    }

    /// `body(chunk)` for every chunk in 0..<chunks, on up to `threads` threads (the caller's among them); returns
    /// when all have run.
    func run(chunks: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        if chunks <= 1 || threads <= 1 || maximumWorkers == 0 {
            for chunk in 0..<chunks { body(chunk) }
            return
        }
        pthread_mutex_lock(mutex)
        if busy {
            // Another thread's job (or this one's, nested) holds the pool: run this one here. Same chunks, same bits.
            pthread_mutex_unlock(mutex)
            for chunk in 0..<chunks { body(chunk) }
            return
        }
        busy = true
        let wanted = min(threads - 1, chunks - 1, maximumWorkers)
        while workers < wanted {
            workers += 1
            startWorker()
        }
        job = body
        nextChunk = 0
        chunkCount = chunks
        pending.store(chunks, ordering: .relaxed)
        generation.wrappingAdd(1, ordering: .releasing)
        if sleepers > 0 { pthread_cond_broadcast(wake) }
        pthread_mutex_unlock(mutex)

        while let (work, chunk) = claim() {
            work(chunk)
            pending.wrappingSubtract(1, ordering: .releasing)
        }
        // Chunks other threads claimed are running: wait for them without taking the lock.
        while pending.load(ordering: .acquiring) != 0 {}
        pthread_mutex_lock(mutex)
        job = nil
        busy = false
        pthread_mutex_unlock(mutex)
    }

    /// The current job and a chunk of it, or nil when every chunk is taken.
    private func claim() -> ((@Sendable (Int) -> Void), Int)? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let job, nextChunk < chunkCount else { return nil }
        nextChunk += 1
        return (job, nextChunk - 1)
    }

    private func workerLoop() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            let start = Self.now()
            var polls = 0
            while generation.load(ordering: .acquiring) == seen {
                polls &+= 1
                if polls & 1023 == 0 && Self.now() - start > pollNanoseconds { break }
            }
            if generation.load(ordering: .acquiring) == seen {
                pthread_mutex_lock(mutex)
                while generation.load(ordering: .acquiring) == seen {
                    sleepers += 1
                    pthread_cond_wait(wake, mutex)
                    sleepers -= 1
                }
                pthread_mutex_unlock(mutex)
            }
            seen = generation.load(ordering: .acquiring)
            while let (work, chunk) = claim() {
                work(chunk)
                pending.wrappingSubtract(1, ordering: .releasing)
            }
        }
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// Called with `mutex` held.
    private func startWorker() {
        var thread = pthread_t()
        let context = Unmanaged.passUnretained(self).toOpaque()
        // A worker starts with every signal blocked (it inherits this thread's mask), so SIGINT always reaches the
        // thread that reads the terminal: readline's handler must run there for Ctrl-C at the prompt to work.
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        let created = pthread_create(&thread, nil, { context in
            Unmanaged<WorkerPool>.fromOpaque(context!).takeUnretainedValue().workerLoop()
            return nil
        }, context)
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        if created == 0 {
            pthread_detach(thread)
        } else {
            workers -= 1  // the posting thread does the work instead
        }
    }
    #else
    func run(chunks: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        if chunks <= 1 || threads <= 1 {
            for chunk in 0..<chunks { body(chunk) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
    }
    #endif
}

/// The threads the kernels run on, for code outside NormKit that must compare like with like (the benchmark's
/// copy bandwidth at the kernels' thread count).
package enum KernelThreads {
    /// `body(chunk)` for every chunk in 0..<chunks on up to `threads` threads, the caller's among them.
    package static func run(chunks: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        WorkerPool.shared.run(chunks: chunks, threads: threads, body)
    }
}
