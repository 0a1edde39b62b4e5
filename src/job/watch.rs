//! A watch that does not die: list, then watch from the list's resourceVersion; after a
//! dropped stream resume from the last version seen; after 410 Expired list again.
//! (kube's `await_condition` stops at the first error; kjenv's waits must not.)
//! A watch whose response does not start in time, or whose stream goes silent for longer than
//! the server's own timeout, is opened again: a hung connection must not hide the Job's end.

use std::fmt::Debug;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::retry::{classify, retry, Policy, Verdict};

/// How long the server keeps a watch open (`timeoutSeconds`).
const WATCH_SECONDS: u32 = 290;

/// One observed change.
#[derive(Debug)]
pub(crate) enum Seen<K> {
    /// A fresh list: everything that exists now (what is missing was deleted meanwhile).
    Listed(Vec<K>),
    Applied(K),
    Deleted(K),
}

/// Watch `api` with these selectors, sending every change to `tx` until the receiver is gone.
/// Transient errors are retried for as long as the receiver waits.
///
/// # Errors
/// A list the API refuses for good (403 Forbidden, 404): the waiter must hear of it rather than
/// wait for events that will never come.
pub(crate) async fn run<K>(
    api: Api<K>,
    fields: Option<String>,
    labels: Option<String>,
    tx: mpsc::Sender<Seen<K>>,
) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let policy = Policy {
        attempts: u32::MAX,
        timed_out_attempts: u32::MAX,
        ..Policy::default()
    };
    // The server ends a watch after WATCH_SECONDS; a stream silent for longer is dead.
    let idle = Duration::from_secs(u64::from(WATCH_SECONDS)) + policy.attempt_timeout;
    let mut list_params = ListParams::default();
    let mut watch_params = WatchParams::default().timeout(WATCH_SECONDS);
    if let Some(f) = &fields {
        list_params = list_params.fields(f);
        watch_params = watch_params.fields(f);
    }
    if let Some(l) = &labels {
        list_params = list_params.labels(l);
        watch_params = watch_params.labels(l);
    }
    'relist: loop {
        let list = retry(&policy, || {
            let api = api.clone();
            let lp = list_params.clone();
            async move { api.list(&lp).await }
        })
        .await?;
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        if tx.send(Seen::Listed(list.items)).await.is_err() {
            return Ok(());
        }
        let mut delay = Duration::from_millis(50);
        loop {
            let opened =
                tokio::time::timeout(policy.attempt_timeout, api.watch(&watch_params, &version))
                    .await;
            let stream = match opened {
                Err(_) => continue, // no answer in time: open it again
                Ok(Ok(s)) => s,
                Ok(Err(kube::Error::Api(s))) if s.code == 410 => continue 'relist,
                Ok(Err(e)) => {
                    if matches!(classify(&e), Verdict::Final) {
                        // A 4xx other than 410 on a watch: list again rather than spin.
                        tokio::time::sleep(delay).await;
                        continue 'relist;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream.into_stream());
            while let Ok(Some(event)) = tokio::time::timeout(idle, stream.next()).await {
                let event = match event {
                    Ok(e) => e,
                    Err(_) => break, // dropped: resume from `version`
                };
                delay = Duration::from_millis(50);
                let seen = match event {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                        version = o.meta().resource_version.clone().unwrap_or(version);
                        Seen::Applied(o)
                    }
                    WatchEvent::Deleted(o) => {
                        version = o.meta().resource_version.clone().unwrap_or(version);
                        Seen::Deleted(o)
                    }
                    WatchEvent::Bookmark(b) => {
                        version = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(status) if status.code == 410 => continue 'relist,
                    WatchEvent::Error(_) => break,
                };
                if tx.send(seen).await.is_err() {
                    return Ok(());
                }
            }
            if tx.is_closed() {
                return Ok(());
            }
            // A stream that ends (timeoutSeconds, a restarted server) is resumed at once, then
            // with backoff if it keeps failing.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
