//! Pure computation spread over a few threads (no pgrx): what verify() does to hash large
//! batches of audit rows on more than one core.
//!
//! A PostgreSQL backend is single-threaded, and these threads never call into it: they only
//! read the bytes they are given (which the calling thread keeps alive and does not touch until
//! every thread has finished) and compute with pure Rust code. They are started with every
//! signal blocked, so that no PostgreSQL signal handler ever runs on them, and they are always
//! joined before `map` returns. If a thread cannot be started, its share is computed on the
//! calling thread.

/// Items a thread is given at least: a smaller input is mapped on the calling thread alone
/// (starting a thread costs more than hashing a few rows).
pub const MIN_PER_THREAD: usize = 1024;

/// `items.iter().map(f).collect()`, computed by up to `threads` threads (the calling one
/// included), each on a contiguous share, with at least `min_per_thread` items per thread.
/// The result is in the order of `items` whatever the number of threads.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, min_per_thread: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, (items.len() / min_per_thread.max(1)).max(1));
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let share = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = items.chunks(share);
        let mine = chunks.next().unwrap_or_default();
        // (Started before this thread maps its own share, so that they run at the same time.)
        let others: Vec<_> = chunks.map(|c| (c, spawn_without_signals(s, move || c.iter().map(f).collect::<Vec<R>>()))).collect();
        let mut out: Vec<R> = mine.iter().map(f).collect();
        for (c, handle) in others {
            match handle.map(|h| h.join()) {
                Some(Ok(part)) => out.extend(part),
                // Not started: computed here. (A panic in `f` is re-raised here, as
                // it would have been on this thread.)
                None => out.extend(c.iter().map(f)),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Starts a scoped thread with every signal blocked (it inherits the mask of the thread that
/// starts it; the caller's mask is restored at once). None if the thread could not be started.
pub fn spawn_without_signals<'scope, 'env, R: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    f: impl FnOnce() -> R + Send + 'scope,
) -> Option<std::thread::ScopedJoinHandle<'scope, R>> {
    // SAFETY: sigfillset/pthread_sigmask on local sets; the previous mask is put back.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous) != 0 {
            return None;
        }
        let handle = std::thread::Builder::new().name("tradeguard-hash".into()).spawn_scoped(s, f).ok();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_result_in_the_same_order_for_any_thread_count() {
        for n in [0usize, 1, 2, 7, 1023, 1024, 2048, 2049, 5000, 10_001] {
            let items: Vec<u64> = (0..n as u64).collect();
            let want: Vec<u64> = items.iter().map(|x| x * 3 + 1).collect();
            for threads in [0, 1, 2, 3, 4, 16] {
                for min in [0, 1, 100, MIN_PER_THREAD] {
                    assert_eq!(map(&items, threads, min, |x| x * 3 + 1), want, "n={n} threads={threads} min={min}");
                }
            }
        }
    }

    #[test]
    fn work_is_shared_between_threads_when_large_enough() {
        let items: Vec<u32> = (0..4096).collect();
        let ids = map(&items, 4, 1024, |_| std::thread::current().id());
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 4);
        // Contiguous shares: the first quarter is the calling thread's.
        assert!(ids[..1024].iter().all(|t| *t == std::thread::current().id()));
        // Too small to share: one thread.
        let ids = map(&items[..1500], 4, 1024, |_| std::thread::current().id());
        assert!(ids.iter().all(|t| *t == std::thread::current().id()));
    }

    #[test]
    fn helper_threads_run_with_signals_blocked() {
        let items: Vec<u32> = (0..2048).collect();
        let blocked = map(&items, 2, 1024, |_| unsafe {
            let mut cur: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut cur);
            libc::sigismember(&cur, libc::SIGINT) == 1 && libc::sigismember(&cur, libc::SIGUSR1) == 1
        });
        // The calling thread's share keeps its own mask (not blocked here); the helper's is.
        assert!(!blocked[0]);
        assert!(blocked[2047]);
        // And the calling thread's mask was put back.
        let mut cur: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut cur) };
        assert_eq!(unsafe { libc::sigismember(&cur, libc::SIGINT) }, 0);
    }

    #[test]
    fn a_panic_in_a_helper_reaches_the_caller() {
        let items: Vec<u32> = (0..4096).collect();
        let r = std::panic::catch_unwind(|| map(&items, 2, 1024, |x| if *x == 4000 { panic!("boom") } else { *x }));
        assert!(r.is_err());
    }
}
