//! Waiting on conditions instead of on time: the one place the tests poll.
//!
//! A test that needs "until X" waits for X with a deadline and, when X does
//! not come, fails saying what it waited for and what it saw last. A test
//! that needs "X does not happen" holds the check for a window and fails the
//! moment it breaks. Outside this module a test sleeps only where the
//! duration is itself the behaviour under test (a client holding a room, a
//! receiver answering slowly).
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(100);

async fn pause(every: Duration) {
    tokio::time::sleep(every).await;
}

/// Poll `check` until it returns `Ok(value)`; panic after `within`, naming
/// `what` and showing the last `Err(seen)`.
pub async fn wait_for_value<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    wait_for_value_every(POLL, what, within, check).await
}

/// [`wait_for_value`] for a check that costs something (spawns a process,
/// reads a file): checked only `every` so often.
pub async fn wait_for_value_every<T, F, Fut>(every: Duration, what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => pause(every).await,
        }
    }
}

/// Poll `check` until it holds; panic after `within`, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for_value(what, within, || {
        let holds = check();
        async move { if holds.await { Ok(()) } else { Err("the condition did not hold".into()) } }
    })
    .await
}

/// [`wait_until`] for a condition that needs no awaiting.
pub async fn wait_until_sync(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    wait_until(what, within, || std::future::ready(check())).await
}

/// Check `check` throughout `window` (at its start, every poll, and at its
/// end); panic as soon as it fails. For "X does not happen": the window is
/// the thing under test, not a stand-in for a condition.
pub async fn assert_stays<F, Fut>(what: &str, window: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    let end = start + window;
    loop {
        let now = Instant::now();
        if let Err(seen) = check().await {
            panic!("{what} stopped holding after {:?} of {window:?}: {seen}", now - start);
        }
        if now >= end {
            return;
        }
        pause(POLL).await;
    }
}

/// [`assert_stays`] for a check that needs no awaiting.
pub async fn assert_stays_sync(what: &str, window: Duration, mut check: impl FnMut() -> Result<(), String>) {
    assert_stays(what, window, || std::future::ready(check())).await
}
