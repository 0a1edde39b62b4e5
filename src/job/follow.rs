//! Following a container's log through faults: the stream is read with timestamps, and a stream
//! that fails (a 503, a reset, a cut connection) is opened again from the last timestamp seen
//! (`sinceTime`), skipping the lines already delivered, until the stream ends cleanly and the
//! container has terminated. Lines are passed on without their timestamps.
//! (`sinceTime` has whole seconds and the kubelet's timestamps nanoseconds: the reopened stream
//! repeats the start of that second, which [`Cursor`] skips by timestamp and count.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, LogParams};

use super::verdict::flow_status;
use crate::error::{Error, Result};
use crate::retry::{classify, retry, Policy, Verdict};

/// Where a log was delivered up to: the last line's timestamp, and how many lines had it.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    last: Option<Timestamp>,
    at_last: usize,
    /// Lines at `last` the current stream still repeats (set when a stream is opened).
    replay: usize,
}

impl Cursor {
    /// A stream is opened from [`Cursor::since`]: it repeats the lines at `last`.
    fn reopen(&mut self) {
        self.replay = self.at_last;
    }

    /// Where a reopened stream starts: the last timestamp's whole second (kube rounds
    /// `sinceTime` to the second, and rounding up would skip lines).
    fn since(&self) -> Option<Timestamp> {
        self.last
            .and_then(|t| Timestamp::from_second(t.as_second()).ok())
    }

    /// Take one timestamped line: its text when it was not delivered before.
    pub(crate) fn take(&mut self, raw: &str) -> Option<String> {
        let (stamp, text) = raw.split_once(' ').unwrap_or((raw, ""));
        let Ok(at) = stamp.parse::<Timestamp>() else {
            // Not a timestamped line (a server without timestamps): pass it on as it is.
            return Some(raw.to_string());
        };
        match self.last {
            Some(last) if at < last => return None,
            Some(last) if at == last => {
                if self.replay > 0 {
                    self.replay -= 1;
                    return None;
                }
                self.at_last += 1;
            }
            _ => {
                self.last = Some(at);
                self.at_last = 1;
                self.replay = 0;
            }
        }
        Some(text.to_string())
    }
}

/// One container's log, followed into `tx`.
#[derive(Clone)]
pub(crate) struct Follow {
    pub api: Api<Pod>,
    pub pod: String,
    pub container: String,
    pub cursor: Arc<Mutex<Cursor>>,
    pub tx: tokio::sync::mpsc::UnboundedSender<String>,
    /// Put before each line (`[sidecar] `: the container of a multi-container pod).
    pub prefix: String,
}

/// How a stream ended.
enum End {
    /// The server ended it: the container may have terminated.
    Clean,
    /// The receiver is gone.
    Dropped,
}

impl Follow {
    pub(crate) fn new(
        api: Api<Pod>,
        pod: &str,
        container: &str,
        tx: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Follow {
        Follow {
            api,
            pod: pod.to_string(),
            container: container.to_string(),
            cursor: Arc::default(),
            tx,
            prefix: String::new(),
        }
    }

    /// The same, with each line passed on after `prefix`.
    pub(crate) fn with_prefix(mut self, prefix: String) -> Follow {
        self.prefix = prefix;
        self
    }

    /// Follow until the container has terminated and its log was read to the end.
    ///
    /// # Errors
    /// A final error (the pod gone, refused), or the last transient one (a node that still
    /// calls the container waiting is one) after `policy.attempts` failures in a row without a
    /// new line.
    pub(crate) async fn run(&self, policy: &Policy) -> Result<()> {
        let mut failures = 0u32;
        let mut pause = policy.first_delay;
        loop {
            let before = self.delivered();
            let failed = match self.pass().await {
                Ok(End::Dropped) => return Ok(()),
                Ok(End::Clean) => match self.terminated(policy).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => None,
                    Err(e) => Some(e),
                },
                Err(e) if matches!(classify(&e), Verdict::Final) && !node_lags(&e) => {
                    return Err(Error::from(e))
                }
                Err(e) => Some(Error::from(e)),
            };
            if self.delivered() != before {
                (failures, pause) = (0, policy.first_delay);
            }
            if let Some(err) = failed {
                failures += 1;
                if failures >= policy.attempts.max(1) {
                    return Err(err);
                }
            }
            // Also after a clean end of a running container's log: no busy loop on a server
            // that ends streams early.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(policy.max_delay);
        }
    }

    /// What was delivered so far (for telling progress).
    fn delivered(&self) -> (Option<Timestamp>, usize) {
        let c = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        (c.last, c.at_last)
    }

    fn params(&self, follow: bool) -> LogParams {
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        cursor.reopen();
        LogParams {
            container: Some(self.container.clone()),
            follow,
            timestamps: true,
            since_time: cursor.since(),
            ..LogParams::default()
        }
    }

    /// One followed stream, from the cursor to its end or failure.
    async fn pass(&self) -> Result<End, kube::Error> {
        let reader = self.api.log_stream(&self.pod, &self.params(true)).await?;
        let mut lines = std::pin::pin!(reader.lines());
        while let Some(line) = lines.next().await {
            let line = line.map_err(kube::Error::ReadEvents)?;
            if !self.deliver(&line) {
                return Ok(End::Dropped);
            }
        }
        Ok(End::Clean)
    }

    /// Pass one raw line on if it is new; false when the receiver is gone.
    fn deliver(&self, raw: &str) -> bool {
        // The lock is held across the send: an abort between the two cannot lose the line.
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        match cursor.take(raw) {
            Some(text) if self.prefix.is_empty() => self.tx.send(text).is_ok(),
            Some(text) => self.tx.send(format!("{}{text}", self.prefix)).is_ok(),
            None => true,
        }
    }

    /// Whether the container has terminated for good (or its pod is gone): its log has no more
    /// lines. (A list by name, not a get: the submitter's Role grants list and watch on pods.)
    async fn terminated(&self, policy: &Policy) -> Result<bool> {
        let by_name = ListParams::default().fields(&format!("metadata.name={}", self.pod));
        let pods = retry(policy, || self.api.list(&by_name)).await?.items;
        Ok(pods
            .first()
            .is_none_or(|pod| done_for_good(pod, &self.container)))
    }

    /// Deliver the log of the container's previous run (`previous=true`), for a container
    /// that restarted before it was followed (a wait that attached late): the kubelet keeps
    /// the one run before the current. Its lines come before the current run's, which the
    /// cursor then resumes after.
    ///
    /// # Errors
    /// The read's error, after the policy's retries.
    pub(crate) async fn read_previous(&self, policy: &Policy) -> Result<()> {
        let params = LogParams {
            container: Some(self.container.clone()),
            previous: true,
            timestamps: true,
            ..LogParams::default()
        };
        let text = retry(policy, || self.api.logs(&self.pod, &params)).await?;
        for line in text.lines() {
            if !self.deliver(line) {
                break;
            }
        }
        Ok(())
    }

    /// Read what the log has beyond the cursor, without following (once a followed stream
    /// could not finish: the lines it missed).
    ///
    /// # Errors
    /// The read's error, after the policy's retries.
    pub(crate) async fn read_rest(&self, policy: &Policy) -> Result<()> {
        let text = retry(policy, || {
            let params = self.params(false);
            async move { self.api.logs(&self.pod, &params).await }
        })
        .await?;
        for line in text.lines() {
            if !self.deliver(line) {
                break;
            }
        }
        Ok(())
    }
}

/// A kubelet's 400 "container … is waiting to start" for a container the wait saw started: a
/// node whose log endpoint answers from a copy of the pod that lags behind its own status
/// writes. Worth the stream's retries (a few seconds), not the end of the log.
fn node_lags(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 400 && s.message.contains("is waiting to start"))
}

/// Whether `container` has terminated and will not run again: its pod has finished, or its
/// restart policy does not restart it (`Never`; `OnFailure` after exit code 0). A container an
/// `OnFailure` pod restarts writes its next attempt's lines to the same log, which the stream
/// goes on following.
pub(crate) fn done_for_good(pod: &Pod, container: &str) -> bool {
    let terminated = flow_status(pod, container)
        .and_then(|c| c.state.as_ref()?.terminated.as_ref())
        .map(|t| t.exit_code);
    let Some(exit_code) = terminated else {
        return false;
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
        || pod.metadata.deletion_timestamp.is_some()
        || match policy {
            Some("OnFailure") => exit_code == 0,
            Some("Always") => false,
            _ => true,
        }
}

/// The retry policy of a log stream within a wait: `timeout` per request.
pub(crate) fn stream_policy(timeout: Duration) -> Policy {
    Policy {
        attempt_timeout: timeout,
        ..Policy::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u32) -> String {
        format!("2026-01-01T00:00:0{}.{:09}Z", n / 10, n % 10 * 100)
    }

    fn pod(policy: &str, phase: &str, exit_code: Option<i32>) -> Pod {
        let state = match exit_code {
            Some(code) => serde_json::json!({"terminated": {"exitCode": code}}),
            None => serde_json::json!({"running": {}}),
        };
        serde_json::from_value(serde_json::json!({
            "spec": {"restartPolicy": policy, "containers": [{"name": "flow"}]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "flow", "state": state, "ready": false, "restartCount": 0, "image": "i", "imageID": ""}
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn a_container_that_will_restart_is_not_done() {
        assert!(!done_for_good(&pod("Never", "Running", None), "flow"));
        assert!(done_for_good(&pod("Never", "Running", Some(1)), "flow"));
        assert!(!done_for_good(
            &pod("OnFailure", "Running", Some(1)),
            "flow"
        ));
        assert!(done_for_good(&pod("OnFailure", "Running", Some(0)), "flow"));
        assert!(done_for_good(&pod("OnFailure", "Failed", Some(1)), "flow"));
        assert!(!done_for_good(&pod("Never", "Running", None), "other"));
    }

    #[test]
    fn a_container_the_node_still_calls_waiting_is_tried_again() {
        let status = |code: u16, message: &str| {
            kube::Error::Api(
                serde_json::from_value(serde_json::json!({
                    "status": "Failure", "code": code, "message": message, "reason": "BadRequest",
                }))
                .unwrap(),
            )
        };
        let waiting = "container \"flow\" in pod \"p\" is waiting to start: ContainerCreating";
        assert!(node_lags(&status(400, waiting)));
        assert!(!node_lags(&status(
            400,
            "container \"x\" is not valid for pod \"p\""
        )));
        assert!(!node_lags(&status(403, waiting)));
    }

    #[test]
    fn lines_are_passed_on_without_their_timestamps() {
        let mut c = Cursor::default();
        assert_eq!(
            c.take(&format!("{} hello world", stamp(1))).as_deref(),
            Some("hello world")
        );
        assert_eq!(c.take(&format!("{} ", stamp(2))).as_deref(), Some(""));
        assert_eq!(c.take("no stamp here").as_deref(), Some("no stamp here"));
    }

    #[test]
    fn a_reopened_stream_repeats_nothing_and_misses_nothing() {
        // Two lines share a timestamp; the stream fails after the first of them.
        let log = [(1, "a"), (2, "b"), (3, "c"), (3, "d"), (4, "e")];
        let raw: Vec<String> = log
            .iter()
            .map(|(t, s)| format!("{} {s}", stamp(*t)))
            .collect();
        let mut c = Cursor::default();
        let mut out: Vec<String> = raw[..3].iter().filter_map(|l| c.take(l)).collect();
        c.reopen();
        assert_eq!(c.since(), Timestamp::from_second(1767225600).ok());
        // The server answers from the second's start: everything again.
        out.extend(raw.iter().filter_map(|l| c.take(l)));
        assert_eq!(out, ["a", "b", "c", "d", "e"]);
        c.reopen();
        assert_eq!(
            raw.iter().filter_map(|l| c.take(l)).count(),
            0,
            "all delivered"
        );
    }
}
