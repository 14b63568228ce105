//! Waiting on state with a deadline: poll, and fail with what was last seen.

use std::{future::Future, time::Duration};

/// Polls `probe` every `every` until it returns `Some`, or fails after
/// `deadline` with the description of the last state seen.
pub async fn within<T, F, Fut>(deadline: Duration, every: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = std::time::Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if started.elapsed() > deadline => {
                panic!("{what}: not reached within {deadline:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// `within` with a 200 ms poll.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    within(deadline, Duration::from_millis(200), what, probe).await
}
