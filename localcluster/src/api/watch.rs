//! `?watch=true`: a chunked stream of `{"type","object"}` lines — synthetic ADDED for RV ""/"0",
//! history replay for RV N (ERROR 410 when too old), selector enter/leave, bookmarks, timeouts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

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
            serde_json::to_writer(
                &mut out,
                &table::table(self.kind, std::slice::from_ref(obj), None),
            )
        } else {
            serde_json::to_writer(&mut out, obj)
        };
        if written.is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
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
    };
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = req.flag("sendInitialEvents");
    let rv_param = req.param("resourceVersion").unwrap_or("");

    let mut initial: Vec<Bytes> = Vec::new();
    let mut expired = None;
    let (rx, start_rv) = if rv_param.is_empty() || rv_param == "0" || send_initial {
        let (items, rv, rx) = cluster
            .store
            .snapshot_and_subscribe(t.kind, t.ns.as_deref());
        initial.extend(
            items
                .iter()
                .filter(|o| filter.selects(o))
                .map(|o| filter.line("ADDED", o)),
        );
        (Some(rx), rv)
    } else {
        let rv: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
        })?;
        match cluster.store.watch_from(rv) {
            Ok((past, rx)) => {
                initial.extend(
                    past.iter()
                        .filter_map(|c| filter.event(c))
                        .map(|(ty, o)| filter.line(ty, o)),
                );
                (Some(rx), past.last().map_or(rv, |c| c.rv))
            }
            Err(e) => {
                expired = Some(e);
                (None, rv)
            }
        }
    };
    if send_initial && bookmarks {
        initial.push(filter.bookmark(start_rv, true));
    }

    let (tx, body) = ChannelBody::channel(256);
    let mut epoch = cluster.watch_epoch.subscribe();
    epoch.borrow_and_update();
    let shutdown = cluster.shutdown.clone();
    let store_rv = {
        let c = cluster.clone();
        move || c.store.current_rv()
    };
    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let error_line = |e: &ApiError| filter.line("ERROR", &e.to_json());
        let Some(mut rx) = rx else {
            if let Some(e) = expired {
                let _ = tx.send(error_line(&e)).await;
            }
            return;
        };
        let mut last_rv = start_rv;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
                changed = epoch.changed() => {
                    if changed.is_ok() {
                        let _ = tx.send(error_line(&ApiError::expired(last_rv, store_rv()))).await;
                    }
                    break;
                }
                _ = tick.tick(), if bookmarks => {
                    if tx.send(filter.bookmark(last_rv, false)).await.is_err() {
                        break;
                    }
                }
                got = rx.recv() => match got {
                    Ok(change) => {
                        if change.rv <= last_rv {
                            continue;
                        }
                        last_rv = change.rv;
                        if let Some((ty, obj)) = filter.event(&change) {
                            if tx.send(filter.line(ty, obj)).await.is_err() {
                                break;
                            }
                        }
                    }
                    // Too slow to keep up: make the client re-list, as an expired watch cache would.
                    Err(RecvError::Lagged(_)) => {
                        let _ = tx.send(error_line(&ApiError::expired(last_rv, store_rv()))).await;
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    });
    Ok(stream_response("application/json", body))
}
