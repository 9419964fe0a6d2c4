//! Running one ffmpeg/ffprobe-bound job per item on all cores (each job mostly waits on a child
//! process), results in item order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `job` on every item of `items`, spread over the machine's cores; `None` if a worker panicked.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    job: impl Fn(usize, &T) -> R + Sync,
) -> Option<Vec<R>> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break done };
                        done.push((i, job(i, item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if results.len() != items.len() {
        return None;
    }
    results.sort_by_key(|(i, _)| *i);
    Some(results.into_iter().map(|(_, r)| r).collect())
}
