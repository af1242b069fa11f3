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

/// Run `f` on the pool when `threads > 1` and the pool could be built; else on this thread.
pub fn run<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    if threads <= 1 {
        return f();
    }
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(available_threads())
            .thread_name(|i| format!("vasttile-{i}"))
            .start_handler(|_| block_all_signals())
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}
