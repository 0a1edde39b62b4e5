//! The changes of the Job or of its pods, from kube-runtime's `watcher` with a backoff: it lists,
//! watches from the list's resourceVersion, resumes a dropped stream, relists after 410 Expired
//! and reopens a stream silent for longer than the server's watch timeout.
//! Added here, because the watcher retries every error for ever: a list the API refuses for good
//! (403, 404) ends the watch with that error; a watch start refused for good lists again; and a
//! watcher that yields nothing for longer than a watch can last is started afresh. (The client
//! of `cluster::connect` bounds the wait for each response's headers, so a list or watch start
//! that never answers fails and is retried; this is the last guard: a hung connection must not
//! hide the Job's end.)

use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::retry::{classify, Verdict};

/// How long the server keeps a watch open (`timeoutSeconds`).
const WATCH_SECONDS: u32 = 290;
/// The watcher's own margin over [`WATCH_SECONDS`] before it takes a silent stream for dead.
const WATCHER_IDLE_MARGIN: Duration = Duration::from_secs(5);

/// One observed change.
#[derive(Debug)]
pub(crate) enum Seen<K> {
    /// A fresh list: everything that exists now (what is missing was deleted meanwhile).
    Listed(Vec<K>),
    Applied(K),
    Deleted(K),
}

/// Why one watcher was left.
enum Left {
    /// The receiver is gone: the wait is over.
    Done,
    /// Start a new watcher (a fresh list) after a pause.
    Restart,
}

/// Watch `api` with these selectors (`config`), sending every change to `tx` until the receiver
/// is gone. Transient errors are retried for as long as the receiver waits; `request_timeout`
/// is the time limit of one request, added to how long a healthy watcher may stay silent.
///
/// # Errors
/// A list the API refuses for good (403 Forbidden, 404): the waiter must hear of it rather than
/// wait for events that will never come.
pub(crate) async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    request_timeout: Duration,
    tx: mpsc::Sender<Seen<K>>,
) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = config.timeout(WATCH_SECONDS);
    let idle =
        Duration::from_secs(u64::from(WATCH_SECONDS)) + WATCHER_IDLE_MARGIN + request_timeout;
    let mut pause = Quick::default();
    loop {
        let changes = watcher(api.clone(), config.clone()).backoff(Quick::default());
        match forward(changes, idle, &tx).await? {
            Left::Done => return Ok(()),
            Left::Restart => tokio::time::sleep(pause.next().unwrap_or_default()).await,
        }
    }
}

/// Send the watcher's changes to `tx`, collecting a list (Init … InitDone) into one
/// [`Seen::Listed`].
async fn forward<K>(
    changes: impl Stream<Item = watcher::Result<Event<K>>>,
    idle: Duration,
    tx: &mpsc::Sender<Seen<K>>,
) -> Result<Left> {
    let mut changes = std::pin::pin!(changes);
    let mut listed = Vec::new();
    loop {
        // The watcher never ends by itself; silence this long means a request that hangs.
        let Ok(Some(change)) = tokio::time::timeout(idle, changes.next()).await else {
            return Ok(Left::Restart);
        };
        let seen = match change {
            Ok(Event::Init) => {
                listed.clear();
                continue;
            }
            Ok(Event::InitApply(o)) => {
                listed.push(o);
                continue;
            }
            Ok(Event::InitDone) => Seen::Listed(std::mem::take(&mut listed)),
            Ok(Event::Apply(o)) => Seen::Applied(o),
            Ok(Event::Delete(o)) => Seen::Deleted(o),
            Err(e) => match settle(e) {
                Some(outcome) => return outcome,
                None => continue,
            },
        };
        if tx.send(seen).await.is_err() {
            return Ok(Left::Done);
        }
    }
}

/// What a watcher error means: `None` to let the watcher retry it (after its backoff).
fn settle(err: watcher::Error) -> Option<Result<Left>> {
    match err {
        watcher::Error::InitialListFailed(e) if is_final(&e) => Some(Err(Error::from(e))),
        // The watcher would retry the same resourceVersion for ever (a 410 among them).
        watcher::Error::WatchStartFailed(e) if is_final(&e) => Some(Ok(Left::Restart)),
        _ => None,
    }
}

fn is_final(err: &kube::Error) -> bool {
    matches!(classify(err), Verdict::Final)
}

/// kjenv's backoff: 50 ms doubling up to 2 s, from 50 ms again after 10 s without a failure.
/// (It ignores [`Backoff::reset`]: the watcher yields a success, `Init`, between two failed
/// lists, which would keep the pause at its first step.)
#[derive(Debug, Clone, Default)]
struct Quick {
    last: Option<(Instant, Duration)>,
}

impl Iterator for Quick {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        const FIRST: Duration = Duration::from_millis(50);
        const MAX: Duration = Duration::from_secs(2);
        const CALM: Duration = Duration::from_secs(10);
        let now = Instant::now();
        let pause = match self.last {
            Some((at, pause)) if now.duration_since(at) < CALM => (pause * 2).min(MAX),
            _ => FIRST,
        };
        self.last = Some((now, pause));
        Some(pause)
    }
}

impl Backoff for Quick {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_two_seconds() {
        let mut q = Quick::default();
        let pauses: Vec<u128> = (0..8).map(|_| q.next().unwrap().as_millis()).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        q.reset();
        assert_eq!(q.next(), Some(Duration::from_secs(2)), "reset is ignored");
    }
}
