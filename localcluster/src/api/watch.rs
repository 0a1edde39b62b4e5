//! `?watch=true`: a chunked stream of `{"type","object"}` lines — synthetic ADDED for RV ""/"0",
//! history replay for RV N (ERROR 410 when too old), selector enter/leave, bookmarks, timeouts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::crud::Selection;
use super::target::{Format, Target};
use super::{stream_response, table, Body, ChannelBody, Req};
use crate::error::ApiError;
use crate::store::{meta_str, Change, EventType, Kind};
use crate::Cluster;

/// Watches without `timeoutSeconds` end after this long (the API server picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark is sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// What a watcher is interested in.
struct Filter {
    kind: Kind,
    ns: Option<String>,
    sel: Selection,
    format: Format,
    /// Set once a Table event went out: as kube-apiserver, only the first carries the columns.
    columns_sent: AtomicBool,
}

impl Filter {
    fn selects(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.ns {
            if meta_str(obj, "namespace") != ns {
                return false;
            }
        }
        self.sel.matches(obj)
    }

    /// The event a change becomes for this watcher, if any.
    fn event<'c>(&self, c: &'c Change) -> Option<(&'static str, &'c Value)> {
        if c.kind != self.kind {
            return None;
        }
        let now = self.selects(&c.object);
        let before = c.prev.as_deref().is_some_and(|p| self.selects(p));
        let ty = match (c.event, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            (EventType::Deleted, _, true) => "DELETED",
            _ => return None,
        };
        Some((ty, &c.object))
    }

    fn line(&self, ty: &str, obj: &Value) -> Bytes {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        let written = if self.format == Format::Table && ty != "ERROR" && ty != "BOOKMARK" {
            serde_json::to_writer(&mut out, &self.table(obj))
        } else {
            serde_json::to_writer(&mut out, obj)
        };
        if written.is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    /// One object as a Table; `columnDefinitions` is null after the stream's first Table.
    fn table(&self, obj: &Value) -> Value {
        let mut t = table::table(self.kind, std::slice::from_ref(obj), None);
        if self.columns_sent.swap(true, Ordering::Relaxed) {
            t["columnDefinitions"] = Value::Null;
        }
        t
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind.kind(), "apiVersion": self.kind.api_version(), "metadata": meta});
        self.line("BOOKMARK", &obj)
    }
}

/// Where a watch begins: the lines sent first, then the changes after `rv` (none when the
/// requested resourceVersion is too old: then `expired` is the 410 to send).
struct Start {
    initial: Vec<Bytes>,
    rx: Option<broadcast::Receiver<Change>>,
    expired: Option<ApiError>,
    rv: u64,
}

/// The stream's options from the query.
struct Params {
    timeout: Duration,
    bookmarks: bool,
}

/// What the streaming task owns besides its cluster and start.
struct Feed {
    filter: Filter,
    params: Params,
    epoch: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
}

/// Starts a watch stream.
///
/// # Errors
/// 400 for bad selectors or a non-numeric resourceVersion.
pub fn serve(
    cluster: &Arc<Cluster>,
    req: &Req,
    t: &Target,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter {
        kind: t.kind,
        ns: t.ns.clone(),
        sel: Selection::from_req(req, t.kind)?,
        format,
        columns_sent: AtomicBool::new(false),
    };
    let params = Params {
        timeout: req
            .param("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        bookmarks: req.flag("allowWatchBookmarks"),
    };
    let send_initial = req.flag("sendInitialEvents");
    let rv_param = req.param("resourceVersion").unwrap_or("");
    let mut start = if rv_param.is_empty() || rv_param == "0" || send_initial {
        from_snapshot(cluster, &filter, t)
    } else {
        let rv: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
        })?;
        from_history(cluster, &filter, rv)
    };
    if send_initial && params.bookmarks {
        start.initial.push(filter.bookmark(start.rv, true));
    }
    // Subscribed now, not in the task: an expiry right after this request still reaches it.
    let mut epoch = cluster.watch_epoch.subscribe();
    epoch.borrow_and_update();
    let (tx, body) = ChannelBody::channel(256);
    let feed = Feed {
        filter,
        params,
        epoch,
        tx,
    };
    tokio::spawn(stream(cluster.clone(), feed, start));
    Ok(stream_response("application/json", body))
}

/// RV ""/"0" or `sendInitialEvents`: a synthetic ADDED per selected object, then live changes.
fn from_snapshot(cluster: &Cluster, filter: &Filter, t: &Target) -> Start {
    let (items, rv, rx) = cluster
        .store
        .snapshot_and_subscribe(t.kind, t.ns.as_deref());
    let initial = items
        .iter()
        .filter(|o| filter.selects(o))
        .map(|o| filter.line("ADDED", o))
        .collect();
    Start {
        initial,
        rx: Some(rx),
        expired: None,
        rv,
    }
}

/// RV N: the history after N replayed, then live changes (or 410 when N is too old).
fn from_history(cluster: &Cluster, filter: &Filter, rv: u64) -> Start {
    match cluster.store.watch_from(rv) {
        Ok((past, rx)) => Start {
            initial: past
                .iter()
                .filter_map(|c| filter.event(c))
                .map(|(ty, o)| filter.line(ty, o))
                .collect(),
            rx: Some(rx),
            expired: None,
            rv: past.last().map_or(rv, |c| c.rv),
        },
        Err(e) => Start {
            initial: Vec::new(),
            rx: None,
            expired: Some(e),
            rv,
        },
    }
}

/// Feeds the response: the initial lines, then each selected change until the timeout, the
/// shutdown, the client leaving, an expiry (`expire_watches`) or a lag.
async fn stream(cluster: Arc<Cluster>, feed: Feed, start: Start) {
    let Feed {
        filter,
        params,
        mut epoch,
        tx,
    } = feed;
    for line in start.initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let Some(mut rx) = start.rx else {
        if let Some(e) = start.expired {
            let _ = tx.send(filter.line("ERROR", &e.to_json())).await;
        }
        return;
    };
    let expired = |last_rv| {
        let e = ApiError::expired(last_rv, cluster.store.current_rv());
        filter.line("ERROR", &e.to_json())
    };
    let mut last_rv = start.rv;
    let deadline = tokio::time::sleep(params.timeout);
    tokio::pin!(deadline);
    let first_tick = tokio::time::Instant::now() + BOOKMARK_EVERY;
    let mut tick = tokio::time::interval_at(first_tick, BOOKMARK_EVERY);
    loop {
        let line = tokio::select! {
            _ = &mut deadline => break,
            _ = cluster.shutdown.cancelled() => break,
            _ = tx.closed() => break,
            changed = epoch.changed() => {
                if changed.is_ok() {
                    let _ = tx.send(expired(last_rv)).await;
                }
                break;
            }
            _ = tick.tick(), if params.bookmarks => filter.bookmark(last_rv, false),
            got = rx.recv() => match got {
                Ok(change) if change.rv <= last_rv => continue,
                Ok(change) => {
                    last_rv = change.rv;
                    match filter.event(&change) {
                        Some((ty, obj)) => filter.line(ty, obj),
                        None => continue,
                    }
                }
                // Too slow to keep up: make the client re-list, as an expired watch cache would.
                Err(RecvError::Lagged(_)) => {
                    let _ = tx.send(expired(last_rv)).await;
                    break;
                }
                Err(RecvError::Closed) => break,
            },
        };
        if tx.send(line).await.is_err() {
            break;
        }
    }
}
