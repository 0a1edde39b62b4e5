//! Every attempt's log of a Job: each pod oldest first, and the container's previous instance
//! before its last restart (OnFailure), each under a header, so that `kjenv logs --all` shows
//! what the newest pod's log alone cannot.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, LogParams};

use super::inspect::{follow_log, job_pods, no_pods};
use super::JobRef;
use crate::cluster::Connection;
use crate::error::Result;
use crate::retry::{retry, Policy};

/// The log of `container` (the flow container by default) in every pod of the Job, oldest
/// first. A pod whose container restarted shows the instance before its last restart first
/// (the kubelet keeps only that one). Each section starts with a `==> pod P, container C <==`
/// line; a log that cannot be read is one `(no log: …)` line, not an error. With `follow`, the
/// newest pod's log is followed until its container ends, and comes last.
///
/// Creation times have whole seconds, and a Job controller with a short backoff makes several
/// pods in one second: the sections are put in the order of their first line's timestamp
/// (the kubelet's, in nanoseconds), a section without lines at its pod's creation time.
///
/// # Errors
/// [`crate::Error::KubeApi`] (404) when the Job has no pod yet, or the pod list failed.
pub async fn every_attempt(
    conn: &Connection,
    job: &JobRef,
    container: Option<&str>,
    follow: bool,
    policy: &Policy,
) -> Result<String> {
    let mut pods = job_pods(conn, job, policy).await?;
    let followed = if follow { pods.pop() } else { None };
    if pods.is_empty() && followed.is_none() {
        return Err(no_pods(job));
    }
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &job.namespace);
    let container = container.unwrap_or(&job.flow_container);
    let mut sections = Vec::new();
    for pod in &pods {
        sections.extend(sections_of(&api, pod, container, policy).await);
    }
    sections.sort_by_key(|s| s.at);
    let mut text = String::new();
    for s in sections {
        s.write(&mut text);
    }
    if let Some(pod) = followed {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(before) = before_restart(&api, &pod, container, policy).await {
            before.write(&mut text);
        }
        let log = follow_log(api.clone(), &name, container, policy).await;
        Section::new(format!("pod {name}, container {container}"), None, log).write(&mut text);
    }
    Ok(text)
}

/// One container instance's log, under its header.
struct Section {
    /// When its first line was written (else its pod's creation time).
    at: Option<Timestamp>,
    header: String,
    log: Result<String>,
}

impl Section {
    fn new(header: String, created: Option<Timestamp>, log: Result<String>) -> Self {
        Section {
            at: created,
            header,
            log,
        }
    }

    /// A section of a log read with timestamps: ordered by its first line, written without.
    fn stamped(header: String, created: Option<Timestamp>, log: Result<String>) -> Self {
        let first = log.as_ref().ok().and_then(|l| first_stamp(l));
        let log = log.map(|l| unstamped(&l));
        Section {
            at: first.or(created),
            header,
            log,
        }
    }

    /// Appends the header line, then the log (ending in a newline) or why there is none.
    fn write(self, text: &mut String) {
        section(text, &self.header, self.log);
    }
}

/// The sections of one pod: the instance before the last restart (if any), then the current.
async fn sections_of(api: &Api<Pod>, pod: &Pod, container: &str, policy: &Policy) -> Vec<Section> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut out: Vec<Section> = before_restart(api, pod, container, policy)
        .await
        .into_iter()
        .collect();
    let log = read(api, &name, container, false, policy).await;
    let header = format!("pod {name}, container {container}");
    out.push(Section::stamped(header, created(pod), log));
    out
}

/// The container's instance before its last restart, if it restarted.
async fn before_restart(
    api: &Api<Pod>,
    pod: &Pod,
    container: &str,
    policy: &Policy,
) -> Option<Section> {
    let restarts = restart_count(pod, container);
    if restarts == 0 {
        return None;
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let header = format!("pod {name}, container {container}, before restart {restarts}");
    let log = read(api, &name, container, true, policy).await;
    Some(Section::stamped(header, created(pod), log))
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn first_stamp(log: &str) -> Option<Timestamp> {
    log.lines().next()?.split_once(' ')?.0.parse().ok()
}

/// The log without the timestamp the kubelet put before each line.
fn unstamped(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    for line in log.lines() {
        let text = match line.split_once(' ') {
            Some((stamp, text)) if stamp.parse::<Timestamp>().is_ok() => text,
            _ => line,
        };
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// How often `container` of `pod` restarted (0 when it has no status yet).
fn restart_count(pod: &Pod, container: &str) -> i32 {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    statuses
        .into_iter()
        .flatten()
        .find(|c| c.name == container)
        .map_or(0, |c| c.restart_count)
}

async fn read(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    previous: bool,
    policy: &Policy,
) -> Result<String> {
    let params = LogParams {
        container: Some(container.to_string()),
        previous,
        timestamps: true,
        ..LogParams::default()
    };
    retry(policy, || api.logs(pod, &params)).await
}

/// Appends one section: its header line, then the log (ending in a newline) or why there is
/// none.
fn section(text: &mut String, header: &str, log: Result<String>) {
    text.push_str(&format!("==> {header} <==\n"));
    match log {
        Ok(log) => {
            text.push_str(&log);
            if !log.is_empty() && !log.ends_with('\n') {
                text.push('\n');
            }
        }
        Err(e) => text.push_str(&format!("(no log: {})\n", one_line(&e.to_string()))),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_section_is_its_header_then_the_log_or_why_there_is_none() {
        let mut text = String::new();
        section(&mut text, "pod a, container flow", Ok("one\ntwo".into()));
        section(&mut text, "pod b, container flow", Ok(String::new()));
        let refused = Error::KubeApi {
            status: 400,
            reason: "BadRequest".into(),
            message: "container \"flow\" in pod \"c\" is\nwaiting to start".into(),
        };
        section(&mut text, "pod c, container flow", Err(refused));
        let expected = "==> pod a, container flow <==\none\ntwo\n==> pod b, container flow <==\n\
                        ==> pod c, container flow <==\n(no log: ";
        assert!(text.starts_with(expected), "{text}");
        assert!(
            text.ends_with("is waiting to start (BadRequest, HTTP 400))\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 6, "{text}");
    }

    #[test]
    fn sections_are_ordered_by_their_first_lines_timestamp_and_written_without_it() {
        let log = "2026-12-02T10:00:01.200000000Z attempt 2\n2026-12-02T10:00:01.3Z done\n";
        let created: Timestamp = "2026-12-02T10:00:01Z".parse().unwrap();
        let later = Section::stamped("b".into(), Some(created), Ok(log.into()));
        let earlier_log = "2026-12-02T10:00:01.100000000Z attempt 1\n";
        let earlier = Section::stamped("a".into(), Some(created), Ok(earlier_log.into()));
        let empty = Section::stamped("c".into(), Some(created), Ok(String::new()));
        let mut sections = [later, empty, earlier];
        sections.sort_by_key(|s| s.at);
        let headers: Vec<_> = sections.iter().map(|s| s.header.as_str()).collect();
        assert_eq!(headers, ["c", "a", "b"]);
        assert_eq!(unstamped(log), "attempt 2\ndone\n");
        assert_eq!(unstamped("no stamp here\n"), "no stamp here\n");
    }
}
