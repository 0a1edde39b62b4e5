//! The changes of the Job or of its pods, from kube-runtime's `watcher` with a backoff: it lists,
//! watches from the list's resourceVersion, resumes a dropped stream, relists after 410 Expired
//! and reopens a stream silent for longer than the server's watch timeout.
//! Added here, because the watcher retries every error for ever: a list the API refuses for good
//! (403, 404) ends the watch with that error; a watch start refused for good lists again; a
//! watcher that yields nothing for longer than a watch can last is started afresh; and requests
//! that keep failing (the API gone, a persistent 500) end the watch once they have failed in a
//! row for the retry budget ([`Budget`]), with the last error and how long it was retried. (The client
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

/// How long transient failures are retried, and what the watch is called in its error.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// `job watch` or `pod watch`.
    pub what: &'static str,
    /// How long list and watch requests may fail in a row before the watch gives up.
    pub period: Duration,
    /// The time limit of one request: with the longest pause, how far apart two failures of
    /// one run of failures can be (further apart, a request succeeded in between; see
    /// [`Budget::gap`]).
    pub request_timeout: Duration,
}

impl Budget {
    /// The longest time between two failures of one run: a request that hangs until its time
    /// limit (the client allows it a second more), then the longest pause, with room for a
    /// loaded machine's scheduling. Twice the limit, so that a hung server's failures never
    /// look like separate runs.
    fn gap(&self) -> Duration {
        self.request_timeout * 2 + Quick::MAX + Duration::from_secs(5)
    }
}

/// The failures in a row so far.
#[derive(Debug, Default)]
struct Failing {
    /// When the first failure of this run came, and when the last did.
    run: Option<(Instant, Instant)>,
    count: u32,
}

/// A run of failures ends the watch only after this many, however short the budget.
const MIN_FAILURES: u32 = 3;

impl Failing {
    /// Count one failure; the error that ends the watch once the budget is spent.
    fn fail(&mut self, budget: &Budget, err: watcher::Error) -> Option<Error> {
        let now = Instant::now();
        let gap = budget.gap();
        let first = match self.run {
            Some((first, last)) if now.duration_since(last) <= gap => first,
            _ => {
                self.count = 0;
                now
            }
        };
        self.run = Some((first, now));
        self.count += 1;
        if self.count == 1 || self.count.is_multiple_of(10) {
            crate::report::warn(&format!(
                "the wait's {} failed ({} in a row), retrying for up to {:.0?} \
                 (KJENV_WAIT_RETRY_BUDGET): {}",
                budget.what,
                self.count,
                budget.period,
                crate::spec::names::shorten(&err.to_string(), 200)
            ));
        }
        let spent = now.duration_since(first);
        (spent >= budget.period && self.count >= MIN_FAILURES)
            .then(|| give_up(budget, self.count, spent, err))
    }

    fn succeed(&mut self) {
        *self = Failing::default();
    }
}

/// The error of a watch that gave up: the last failure, saying what failed for how long.
fn give_up(budget: &Budget, count: u32, spent: Duration, err: watcher::Error) -> Error {
    let cause = match err {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => {
            Error::from(e)
        }
        watcher::Error::WatchFailed(e) => Error::from(e),
        watcher::Error::WatchError(status) => Error::from(kube::Error::Api(status)),
        other => Error::unreachable(other.to_string()),
    };
    let context = format!(
        "the wait's {} failed {count} times in {spent:.1?} ({} sets the retry budget)",
        budget.what,
        crate::settings::WAIT_RETRY_BUDGET_ENV
    );
    // One line of at most ~300 characters in all: the cause (a TLS library's message can carry
    // a URL of its own) is cut in the middle.
    let short = |cause: &str| {
        let one_line = cause.split_whitespace().collect::<Vec<_>>().join(" ");
        crate::spec::names::shorten(&one_line, CAUSE_CHARS).into_owned()
    };
    match cause {
        Error::KubeApi {
            status,
            reason,
            message,
        } => Error::KubeApi {
            status,
            reason,
            message: format!("{context}: {}", short(&message)),
        },
        Error::Unreachable { detail, source } => Error::Unreachable {
            detail: format!("{context}: {}", short(&detail)),
            source,
        },
        other => other,
    }
}

/// How much of the last failure a give-up message quotes.
const CAUSE_CHARS: usize = 140;

/// Watch `api` with these selectors (`config`), sending every change to `tx` until the receiver
/// is gone. Transient errors are retried within `budget`; its request time limit is added to
/// how long a healthy watcher may stay silent.
///
/// # Errors
/// A list the API refuses for good (403 Forbidden, 404): the waiter must hear of it rather than
/// wait for events that will never come; the last error when requests have kept failing for
/// the whole budget (the API gone or broken).
pub(crate) async fn run<K>(
    api: Api<K>,
    config: watcher::Config,
    budget: Budget,
    tx: mpsc::Sender<Seen<K>>,
) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = config.timeout(WATCH_SECONDS);
    let idle = Duration::from_secs(u64::from(WATCH_SECONDS))
        + WATCHER_IDLE_MARGIN
        + budget.request_timeout;
    let mut pause = Quick::default();
    let mut failing = Failing::default();
    loop {
        let changes = watcher(api.clone(), config.clone()).backoff(Quick::default());
        match forward(changes, idle, &budget, &mut failing, &tx).await? {
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
    budget: &Budget,
    failing: &mut Failing,
    tx: &mpsc::Sender<Seen<K>>,
) -> Result<Left> {
    let mut changes = std::pin::pin!(changes);
    let mut listed = Vec::new();
    loop {
        // The watcher never ends by itself; silence this long means a request that hangs.
        let Ok(Some(change)) = tokio::time::timeout(idle, changes.next()).await else {
            return Ok(Left::Restart);
        };
        // `Init` comes before a list is even asked for: only an answer ends a run of failures.
        if matches!(
            change,
            Ok(Event::InitApply(_) | Event::InitDone | Event::Apply(_) | Event::Delete(_))
        ) {
            failing.succeed();
        }
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
                Ok(outcome) => return outcome,
                Err(e) => match failing.fail(budget, e) {
                    Some(err) => return Err(err),
                    None => continue,
                },
            },
        };
        if tx.send(seen).await.is_err() {
            return Ok(Left::Done);
        }
    }
}

/// What a watcher error means: `Err` (the error back) to let the watcher retry it (after its
/// backoff), within the budget.
fn settle(err: watcher::Error) -> Result<Result<Left>, watcher::Error> {
    match err {
        watcher::Error::InitialListFailed(e) if is_final(&e) => Ok(Err(Error::from(e))),
        // The watcher would retry the same resourceVersion for ever (a 410 among them).
        watcher::Error::WatchStartFailed(e) if is_final(&e) => Ok(Ok(Left::Restart)),
        other => Err(other),
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

impl Quick {
    /// The longest pause.
    const MAX: Duration = Duration::from_secs(2);
}

impl Iterator for Quick {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        const FIRST: Duration = Duration::from_millis(50);
        const CALM: Duration = Duration::from_secs(10);
        let now = Instant::now();
        let pause = match self.last {
            Some((at, pause)) if now.duration_since(at) < CALM => (pause * 2).min(Quick::MAX),
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

    fn refused() -> watcher::Error {
        let status = kube::core::Status::failure("boom", "InternalError").with_code(500);
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn failures_in_a_row_end_the_watch_after_the_budget_with_the_last_status() {
        let budget = Budget {
            what: "job watch",
            period: Duration::ZERO,
            request_timeout: Duration::from_secs(1),
        };
        let mut failing = Failing::default();
        assert!(failing.fail(&budget, refused()).is_none());
        assert!(failing.fail(&budget, refused()).is_none());
        failing.succeed();
        assert!(
            failing.fail(&budget, refused()).is_none(),
            "a success starts afresh"
        );
        assert!(failing.fail(&budget, refused()).is_none());
        let err = failing.fail(&budget, refused()).expect("three in a row");
        let text = err.to_string();
        assert!(matches!(err, Error::KubeApi { status: 500, .. }), "{text}");
        assert!(text.contains("job watch failed 3 times"), "{text}");
        assert!(text.contains("KJENV_WAIT_RETRY_BUDGET"), "{text}");
    }

    #[test]
    fn failures_within_the_budget_are_retried() {
        let budget = Budget {
            what: "pod watch",
            period: Duration::from_secs(60),
            request_timeout: Duration::from_secs(1),
        };
        let mut failing = Failing::default();
        assert!((0..20).all(|_| failing.fail(&budget, refused()).is_none()));
    }
}
