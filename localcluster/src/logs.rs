//! Per-container log store: the kubelet appends each process's merged stdout/stderr, line by
//! line, and the API's `pods/{name}/log` endpoint reads (and follows) it.
//!
//! Every container keeps two attempts: the *current* one and the *previous* one (what
//! `?previous=true` serves after an in-place restart). Each attempt is bounded in memory
//! ([`MAX_BYTES_PER_CONTAINER`]); the oldest lines are dropped first.
//!
//! Reading while the process runs (`follow=true`):
//! ```ignore
//! let log = cluster.logs.get(ns, pod, container, false)?;
//! let mut cursor = 0;
//! loop {
//!     let (lines, next, finished) = log.read_from(cursor);
//!     send(lines);
//!     cursor = next;
//!     if finished { break; }
//!     log.wait_past(cursor).await;          // race-free, unlike snapshot() + changed()
//! }
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// The most bytes kept per container attempt; older lines are dropped beyond it.
pub const MAX_BYTES_PER_CONTAINER: usize = 10 * 1024 * 1024;

/// A line longer than this is cut into several lines (as the CRI log format does at 16 KiB),
/// so a process that never prints a newline still shows up while it runs.
const MAX_LINE: usize = 16 * 1024;

/// One line of output, as the kubelet saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was completed (what `timestamps=true` prints, RFC 3339 with nanoseconds).
    pub time: DateTime<Utc>,
    /// The line's bytes, including its trailing `'\n'` (the last line of a finished log may
    /// lack it if the process did not print one).
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
struct LogState {
    lines: VecDeque<LogLine>,
    /// Sequence number of `lines[0]`: lines ever appended before it were dropped by the cap.
    first_seq: u64,
    /// Total bytes in `lines`.
    size: usize,
    /// Bytes of an unfinished line (no `'\n'` yet).
    partial: Vec<u8>,
    finished: bool,
}

impl LogState {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.lines.len() as u64
    }

    fn append(&mut self, line: Vec<u8>) {
        self.size += line.len();
        self.lines.push_back(LogLine {
            time: Utc::now(),
            bytes: Bytes::from(line),
        });
        while self.size > MAX_BYTES_PER_CONTAINER {
            match self.lines.pop_front() {
                Some(old) => {
                    self.size -= old.bytes.len();
                    self.first_seq += 1;
                }
                None => break,
            }
        }
    }
}

/// The log of one attempt of one container: an append-only, bounded list of lines.
#[derive(Debug)]
pub struct ContainerLog {
    state: Mutex<LogState>,
    /// Bumped on every change (new line or finish); followers wait on it.
    version: watch::Sender<u64>,
}

impl Default for ContainerLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ContainerLog {
    /// An empty, unfinished log.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(LogState::default()),
            version: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding this lock cannot leave the state inconsistent in a way that
        // matters for logs, so a poisoned lock is simply taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// All lines kept so far, and whether the log is finished (the process exited and no
    /// more lines will come).
    pub fn snapshot(&self) -> (Vec<LogLine>, bool) {
        let st = self.lock();
        (st.lines.iter().cloned().collect(), st.finished)
    }

    /// The lines with sequence number `>= cursor` (0 = from the start), the cursor to pass
    /// next time, and whether the log is finished. Lines dropped by the memory cap are
    /// skipped silently. Use with [`ContainerLog::wait_past`] to follow a log.
    pub fn read_from(&self, cursor: u64) -> (Vec<LogLine>, u64, bool) {
        let st = self.lock();
        let skip = cursor.saturating_sub(st.first_seq) as usize;
        let lines = st.lines.iter().skip(skip).cloned().collect();
        (lines, st.next_seq(), st.finished)
    }

    /// Whether the log is finished.
    pub fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Resolves once there are lines at or after `cursor` (see [`ContainerLog::read_from`]),
    /// or the log is finished. Returns at once if that is already so: no wake-up is lost
    /// between a read and this call.
    pub async fn wait_past(&self, cursor: u64) {
        let mut rx = self.version.subscribe();
        loop {
            {
                let st = self.lock();
                if st.finished || st.next_seq() > cursor {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Resolves on the next new line or on finish, whichever comes first — or at once if
    /// the log is already finished.
    ///
    /// A change that happens between a [`ContainerLog::snapshot`] and this call is only
    /// noticed at the following change; prefer [`ContainerLog::read_from`] +
    /// [`ContainerLog::wait_past`] for following.
    pub async fn changed(&self) {
        let mut rx = self.version.subscribe();
        if self.is_finished() {
            return;
        }
        let _ = rx.changed().await;
    }

    /// Appends output bytes. Complete lines become visible at once; an unfinished line is
    /// kept until its `'\n'` arrives, [`MAX_LINE`] bytes pile up, or the log is finished.
    /// Ignored after [`ContainerLog::finish`].
    pub fn push(&self, bytes: &[u8]) {
        let added = {
            let mut st = self.lock();
            if st.finished {
                return;
            }
            let mut added = false;
            let mut rest = bytes;
            while !rest.is_empty() {
                let room = MAX_LINE - st.partial.len();
                let window = &rest[..rest.len().min(room)];
                match window.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        st.partial.extend_from_slice(&window[..=i]);
                        rest = &rest[i + 1..];
                    }
                    None => {
                        st.partial.extend_from_slice(window);
                        rest = &rest[window.len()..];
                        if st.partial.len() < MAX_LINE {
                            continue;
                        }
                    }
                }
                let line = std::mem::take(&mut st.partial);
                st.append(line);
                added = true;
            }
            added
        };
        if added {
            self.bump();
        }
    }

    /// Marks the log finished (the process exited): flushes an unfinished last line and
    /// wakes every follower. Idempotent.
    pub fn finish(&self) {
        {
            let mut st = self.lock();
            if st.finished {
                return;
            }
            if !st.partial.is_empty() {
                let line = std::mem::take(&mut st.partial);
                st.append(line);
            }
            st.finished = true;
        }
        self.bump();
    }
}

#[derive(Debug, Default)]
struct Attempts {
    current: Option<Arc<ContainerLog>>,
    previous: Option<Arc<ContainerLog>>,
}

type Key = (String, String, String);

/// All container logs of the cluster, keyed by namespace, pod and container name.
#[derive(Debug, Default)]
pub struct LogStore {
    inner: Mutex<HashMap<Key, Attempts>>,
}

impl LogStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Attempts>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log of the current attempt of a container (`previous == false`) or of the attempt
    /// before it (`previous == true`); `None` if that container never started (or that
    /// attempt does not exist).
    pub fn get(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Option<Arc<ContainerLog>> {
        let map = self.lock();
        let attempts = map.get(&(ns.to_owned(), pod.to_owned(), container.to_owned()))?;
        if previous {
            attempts.previous.clone()
        } else {
            attempts.current.clone()
        }
    }

    /// Starts a new attempt of a container and returns its (empty) log; the attempt before
    /// becomes the `previous` one (and is marked finished), the one before that is dropped.
    pub fn open(&self, ns: &str, pod: &str, container: &str) -> Arc<ContainerLog> {
        let log = Arc::new(ContainerLog::new());
        let old = {
            let mut map = self.lock();
            let attempts = map
                .entry((ns.to_owned(), pod.to_owned(), container.to_owned()))
                .or_default();
            let old = attempts.current.replace(log.clone());
            attempts.previous.clone_from(&old);
            old
        };
        if let Some(old) = old {
            old.finish();
        }
        log
    }

    /// Forgets every log of a pod (when the pod is gone), finishing them so followers end.
    pub fn remove_pod(&self, ns: &str, pod: &str) {
        let removed: Vec<Attempts> = {
            let mut map = self.lock();
            let keys: Vec<Key> = map
                .keys()
                .filter(|(n, p, _)| n == ns && p == pod)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for a in removed {
            for log in a.current.iter().chain(a.previous.iter()) {
                log.finish();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[LogLine]) -> String {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect()
    }

    #[test]
    fn splits_lines_and_flushes_partial_on_finish() {
        let log = ContainerLog::new();
        log.push(b"a\nb");
        log.push(b"c\nd");
        let (lines, done) = log.snapshot();
        assert_eq!(text(&lines), "a\nbc\n");
        assert_eq!(lines.len(), 2);
        assert!(!done);
        log.finish();
        let (lines, done) = log.snapshot();
        assert_eq!(text(&lines), "a\nbc\nd");
        assert!(done);
        log.push(b"ignored\n");
        assert_eq!(log.snapshot().0.len(), 3);
    }

    #[test]
    fn long_lines_are_cut() {
        let log = ContainerLog::new();
        log.push(&vec![b'x'; MAX_LINE * 2 + 5]);
        assert_eq!(log.snapshot().0.len(), 2);
        log.finish();
        assert_eq!(log.snapshot().0.len(), 3);
    }

    #[test]
    fn memory_is_capped_and_cursor_skips_dropped_lines() {
        let log = ContainerLog::new();
        let line = vec![b'y'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<_>>();
        for _ in 0..(MAX_BYTES_PER_CONTAINER / 1024 + 10) {
            log.push(&line);
        }
        let (lines, next, _) = log.read_from(0);
        assert_eq!(lines.len(), MAX_BYTES_PER_CONTAINER / 1024);
        assert_eq!(next, (MAX_BYTES_PER_CONTAINER / 1024 + 10) as u64);
        let (lines, next2, _) = log.read_from(next);
        assert!(lines.is_empty());
        assert_eq!(next2, next);
    }

    #[test]
    fn attempts_rotate() {
        let store = LogStore::new();
        assert!(store.get("ns", "p", "c", false).is_none());
        let first = store.open("ns", "p", "c");
        first.push(b"one\n");
        let second = store.open("ns", "p", "c");
        second.push(b"two\n");
        assert!(first.is_finished());
        let prev = store.get("ns", "p", "c", true).expect("previous");
        assert_eq!(text(&prev.snapshot().0), "one\n");
        let cur = store.get("ns", "p", "c", false).expect("current");
        assert_eq!(text(&cur.snapshot().0), "two\n");
        store.remove_pod("ns", "p");
        assert!(store.get("ns", "p", "c", false).is_none());
        assert!(second.is_finished());
    }

    #[tokio::test]
    async fn followers_wake_on_push_and_finish() {
        let log = Arc::new(ContainerLog::new());
        let l2 = log.clone();
        let follower = tokio::spawn(async move {
            let mut cursor = 0;
            let mut out = String::new();
            loop {
                let (lines, next, done) = l2.read_from(cursor);
                out.push_str(&text(&lines));
                cursor = next;
                if done {
                    return out;
                }
                l2.wait_past(cursor).await;
            }
        });
        for i in 0..5 {
            log.push(format!("{i}\n").as_bytes());
            tokio::task::yield_now().await;
        }
        log.finish();
        let out = tokio::time::timeout(std::time::Duration::from_secs(5), follower)
            .await
            .expect("follower finished")
            .expect("no panic");
        assert_eq!(out, "0\n1\n2\n3\n4\n");
    }
}
