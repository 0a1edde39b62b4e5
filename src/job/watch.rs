//! A watch that does not die: list, then watch from the list's resourceVersion; after a
//! dropped stream resume from the last version seen; after 410 Expired list again.
//! (kube's `await_condition` stops at the first error; kjenv's waits must not.)

use std::fmt::Debug;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::retry::{classify, retry, Policy, Verdict};

/// One observed change.
#[derive(Debug)]
pub(crate) enum Seen<K> {
    /// A fresh list: everything that exists now (what is missing was deleted meanwhile).
    Listed(Vec<K>),
    Applied(K),
    Deleted(K),
}

/// Watch `api` with these selectors, sending every change to `tx` until the receiver is gone.
/// Errors of a single request are retried; the loop itself never gives up.
pub(crate) async fn run<K>(
    api: Api<K>,
    fields: Option<String>,
    labels: Option<String>,
    tx: mpsc::Sender<Seen<K>>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let policy = Policy {
        attempts: u32::MAX,
        ..Policy::default()
    };
    let mut list_params = ListParams::default();
    let mut watch_params = WatchParams::default().timeout(290);
    if let Some(f) = &fields {
        list_params = list_params.fields(f);
        watch_params = watch_params.fields(f);
    }
    if let Some(l) = &labels {
        list_params = list_params.labels(l);
        watch_params = watch_params.labels(l);
    }
    'relist: loop {
        let list = match retry(&policy, || {
            let api = api.clone();
            let lp = list_params.clone();
            async move { api.list(&lp).await }
        })
        .await
        {
            Ok(list) => list,
            Err(_) => return,
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        if tx.send(Seen::Listed(list.items)).await.is_err() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        loop {
            let stream = match api.watch(&watch_params, &version).await {
                Ok(s) => s,
                Err(kube::Error::Api(s)) if s.code == 410 => continue 'relist,
                Err(e) => {
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
            while let Some(event) = stream.next().await {
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
                    return;
                }
            }
            if tx.is_closed() {
                return;
            }
            // A stream that ends (timeoutSeconds, a restarted server) is resumed at once, then
            // with backoff if it keeps failing.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
