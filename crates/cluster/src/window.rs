//! A concurrency window that adapts to the API server's back-pressure, shared by the requests of
//! one operation: writes of a restore, exec hooks of a backup.
//!
//! It starts at its widest. An HTTP 429 (API Priority and Fairness turning a request away) halves
//! it, and every window's worth of successes widens it by one again, up to where it started
//! (additive increase, multiplicative decrease, as TCP does).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{AcquireError, Semaphore, SemaphorePermit};

pub struct Window {
    permits: Semaphore,
    limit: AtomicUsize,
    max: usize,
    successes: AtomicUsize,
}

impl Window {
    /// At most `max` at once (at least one).
    pub fn new(max: usize) -> Arc<Window> {
        let max = max.max(1);
        Arc::new(Window {
            permits: Semaphore::new(max),
            limit: AtomicUsize::new(max),
            max,
            successes: AtomicUsize::new(0),
        })
    }

    /// A place in the window, held while the request runs.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.permits.acquire().await
    }

    /// The current width.
    pub fn width(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn on_success(&self) {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit >= self.max {
            return;
        }
        if self.successes.fetch_add(1, Ordering::Relaxed) + 1 >= limit
            && self
                .limit
                .compare_exchange(limit, limit + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.successes.store(0, Ordering::Relaxed);
            self.permits.add_permits(1);
        }
    }

    /// Halves the window; the permits given up are taken back as requests finish.
    pub fn on_throttled(self: &Arc<Self>) {
        let limit = self.limit.load(Ordering::Relaxed);
        let new = (limit / 2).max(1);
        if new == limit
            || self
                .limit
                .compare_exchange(limit, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.successes.store(0, Ordering::Relaxed);
        tracing::debug!(
            window = new,
            "API server throttled us; narrowing the window"
        );
        let window = self.clone();
        tokio::spawn(async move {
            if let Ok(p) = window
                .permits
                .acquire_many(u32::try_from(limit - new).unwrap_or(u32::MAX))
                .await
            {
                p.forget();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttling_halves_the_window_and_successes_widen_it_again() {
        let window = Window::new(8);
        assert_eq!(window.width(), 8);
        window.on_throttled();
        window.on_throttled();
        assert_eq!(window.width(), 2);
        // The permits given up are taken back: only two fit at once now.
        tokio::task::yield_now().await;
        let held = (
            window.acquire().await.unwrap(),
            window.acquire().await.unwrap(),
        );
        assert!(
            window.permits.try_acquire().is_err(),
            "a third place must not be free"
        );
        drop(held);
        // A window's worth of successes widens it by one, never past where it started.
        window.on_success();
        window.on_success();
        assert_eq!(window.width(), 3);
        for _ in 0..100 {
            window.on_success();
        }
        assert_eq!(window.width(), 8);
        let one = Window::new(0);
        one.on_throttled();
        assert_eq!(one.width(), 1);
    }
}
