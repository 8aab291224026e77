//! Poll until a condition holds: the tests' one polling loop.
//!
//! `within(timeout)` checks the condition first, then every `every` (5 ms unless set) until
//! it holds or `timeout` has passed; the answer is how long it took. `expect` panics instead
//! of answering `None`; `until_ok` keeps the last failed check for the test's message.

use std::future::Future;
use std::time::Duration;

// tokio's clock: a test with paused time polls on the paused clock.
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Poll {
    timeout: Duration,
    every: Duration,
}

/// Polls for at most `timeout`.
pub fn within(timeout: Duration) -> Poll {
    Poll {
        timeout,
        every: Duration::from_millis(5),
    }
}

impl Poll {
    /// Checks every `every` (a test that measures a latency polls often).
    pub fn every(self, every: Duration) -> Poll {
        Poll { every, ..self }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long until `f` held; `None` if it did not within the timeout.
    pub async fn until(self, mut f: impl FnMut() -> bool) -> Option<Duration> {
        self.until_async(|| std::future::ready(f())).await
    }

    /// [`Poll::until`] with an async condition.
    pub async fn until_async<F, Fut>(self, mut f: F) -> Option<Duration>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        self.until_ok(|| {
            let check = f();
            async move {
                if check.await {
                    Ok(())
                } else {
                    Err(())
                }
            }
        })
        .await
        .ok()
        .map(|((), took)| took)
    }

    /// Polls `f` until it answers `Ok`: that value and how long it took; else the last
    /// `Err` (what a failing test shows: the last report, the pending nodes).
    pub async fn until_ok<T, E, F, Fut>(self, mut f: F) -> Result<(T, Duration), E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        loop {
            match f().await {
                Ok(value) => return Ok((value, start.elapsed())),
                Err(last) if start.elapsed() >= self.timeout => return Err(last),
                Err(_) => tokio::time::sleep(self.every).await,
            }
        }
    }

    /// How long until `f` held; panics with `what` if it did not within the timeout.
    pub async fn expect(self, what: &str, f: impl FnMut() -> bool) -> Duration {
        let timeout = self.timeout;
        self.until(f)
            .await
            .unwrap_or_else(|| panic!("{what}: not within {timeout:?}"))
    }

    /// [`Poll::expect`] with an async condition.
    pub async fn expect_async<F, Fut>(self, what: &str, f: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let timeout = self.timeout;
        self.until_async(f)
            .await
            .unwrap_or_else(|| panic!("{what}: not within {timeout:?}"))
    }
}
