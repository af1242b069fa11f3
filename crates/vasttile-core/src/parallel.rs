//! The thread pool for work that pays to split (kernel heat), built once per process on first
//! use. Its threads block every signal, so PostgreSQL's handlers only ever run on the backend's
//! own thread; they touch only memory the caller hands them (plain Rust data, never anything of
//! PostgreSQL's). The caller keeps the backend responsive by splitting work into chunks and
//! checking for interrupts between them on its own thread.

use std::sync::OnceLock;

static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

/// Threads worth using on this machine (at most 8: tiles are small).
pub fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

fn block_all_signals() {
    // SAFETY: plain libc calls on a fresh, fully owned sigset_t for the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(available_threads())
            .thread_name(|i| format!("vasttile-{i}"))
            .start_handler(|_| block_all_signals())
            .build()
            .ok()
    })
    .as_ref()
}

/// Run `f` on the pool when `threads > 1` and the pool could be built; else on this thread.
pub fn run<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    // One thread (e.g. in a PostgreSQL parallel worker) never builds the pool.
    match (threads > 1).then(pool).flatten() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// Work started on the pool by [`start`] while the caller goes on; [`Job::wait`] for its result.
/// Dropped without waiting, the job still runs to its end and its result is dropped.
#[must_use]
pub struct Job<R>(JobState<R>);

enum JobState<R> {
    Done(R),
    Running(std::sync::mpsc::Receiver<std::thread::Result<R>>),
}

/// Start `f` on the pool when `threads > 1` (the caller's thread goes on, e.g. reading the next
/// rows), else run it now. `f` owns its data, so a caller that leaves early (an error) only
/// drops the result; a panic in `f` reaches the caller at [`Job::wait`].
pub fn start<R: Send + 'static>(threads: usize, f: impl FnOnce() -> R + Send + 'static) -> Job<R> {
    match (threads > 1).then(pool).flatten() {
        Some(pool) => {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            pool.spawn(move || {
                // Caught here: a panic escaping a spawned job would abort the process.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                let _ = tx.send(result);
            });
            Job(JobState::Running(rx))
        }
        None => Job(JobState::Done(f())),
    }
}

impl<R> Job<R> {
    /// The job's result, once it has finished.
    pub fn wait(self) -> R {
        match self.0 {
            JobState::Done(r) => r,
            JobState::Running(rx) => match rx.recv() {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => panic!("a job of the thread pool ended without a result"),
            },
        }
    }
}
