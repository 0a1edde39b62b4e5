//! Long-running tasks that survive their own bugs: one supervisor for the job controller's
//! and the kubelet's loops (a leaf).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Spawns `make()` as a task and starts it again (after 100 ms, logging `panic_message`) each
/// time it panics, until it returns or `shutdown` is cancelled: a bug must not silently stop
/// the loop.
pub fn supervise<F, Fut>(panic_message: &'static str, shutdown: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            match tokio::spawn(make()).await {
                Err(e) if e.is_panic() => {
                    eprintln!("{panic_message}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_loop_is_restarted_until_it_returns() {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervise("test loop panicked", CancellationToken::new(), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move { assert!(n >= 2, "panics on the first two runs") }
        });
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
