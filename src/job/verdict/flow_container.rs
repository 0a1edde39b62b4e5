//! The flow container ended in a way no retry can fix: the flow could not be loaded (exit code
//! 66), its command could not run (126, 127) or the container could not start (128,
//! `StartError`, `ContainerCannotRun`). The wait fails at the first such attempt, with the
//! line that says why (the termination message, else the flow container's last log line).

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus};

use super::{flow_status, pod_name, Outcome, PodTrack, Rules};
use crate::transform::unfixable::UNFIXABLE_EXIT_CODES;

/// The exit code of the in-container runner when it cannot load the flow.
pub const FLOW_NOT_LOADED: i32 = UNFIXABLE_EXIT_CODES[0];

/// The reasons of this rule's outcomes.
pub const REASONS: [&str; 2] = ["FlowNotLoaded", "CommandCannotRun"];

/// Container start failures of container runtimes, whatever the exit code.
const START_FAILURES: [&str; 2] = ["StartError", "ContainerCannotRun"];

/// Whether a terminated flow container ended in a way no retry can fix.
pub fn is_unfixable(t: &ContainerStateTerminated) -> bool {
    UNFIXABLE_EXIT_CODES.contains(&t.exit_code)
        || t.reason
            .as_deref()
            .is_some_and(|r| START_FAILURES.contains(&r))
}

/// How container `c` last ended: its current state, or (restarted in place under `OnFailure`,
/// waiting in `CrashLoopBackOff`) its last one.
pub fn last_end(c: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    let now = c.state.as_ref().and_then(|s| s.terminated.as_ref());
    now.or_else(|| c.last_state.as_ref()?.terminated.as_ref())
}

/// The flow container's unfixable end in this pod.
fn unfixable_end<'a>(t: &'a PodTrack, rules: &Rules) -> Option<&'a ContainerStateTerminated> {
    let c = flow_status(&t.pod, &rules.flow_container)?;
    last_end(c).filter(|t| is_unfixable(t))
}

/// The failure kjenv's own podFailurePolicy rule (exit codes [`UNFIXABLE_EXIT_CODES`] of the
/// flow container) stands for, from the Job's `PodFailurePolicy` `message` (`Container flow for
/// pod ns/p failed with exit code 66 matching FailJob rule at index 0`), when the watch has not
/// shown the pod's end yet: named as [`unfixable`] names it (the wait's explanation adds the
/// pod's exit code and last line). `None` for any other rule's message.
pub fn own_rule_outcome(rules: &Rules, message: &str) -> Option<Outcome> {
    let prefix = format!("Container {} for pod ", rules.flow_container);
    let (pod, rest) = message
        .strip_prefix(&prefix)?
        .split_once(" failed with exit code ")?;
    let code: i32 = rest.split_whitespace().next()?.parse().ok()?;
    if !UNFIXABLE_EXIT_CODES.contains(&code) {
        return None;
    }
    let pod = pod.rsplit('/').next().unwrap_or(pod);
    let container = &rules.flow_container;
    let (reason, what) = if code == FLOW_NOT_LOADED {
        ("FlowNotLoaded", "could not load the flow".to_string())
    } else {
        let what = format!("could not run its command (exit code {code})");
        ("CommandCannotRun", what)
    };
    Some(Outcome::Stuck {
        pod: pod.into(),
        reason: reason.into(),
        message: format!("pod {pod}: container {container} {what}; no retry can fix that"),
    })
}

/// A pod whose flow container ended so: the wait is over (the caller stops the retries).
pub fn unfixable(t: &PodTrack, rules: &Rules) -> Option<Outcome> {
    let end = unfixable_end(t, rules)?;
    let name = pod_name(&t.pod);
    let container = &rules.flow_container;
    let said = termination_line(end)
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    let (reason, what) = if end.exit_code == FLOW_NOT_LOADED {
        ("FlowNotLoaded", "could not load the flow".to_string())
    } else {
        let why = end.reason.as_deref().unwrap_or("Error");
        let what = format!(
            "could not run its command ({why}, exit code {})",
            end.exit_code
        );
        ("CommandCannotRun", what)
    };
    Some(Outcome::Stuck {
        pod: name.clone(),
        reason: reason.into(),
        message: format!("pod {name}: container {container} {what}{said}; no retry can fix that"),
    })
}

/// The last line of a termination message (the runner writes one line; a kubelet's
/// `FallbackToLogsOnError` gives the log's last lines).
pub fn termination_line(t: &ContainerStateTerminated) -> Option<String> {
    last_line(t.message.as_deref().unwrap_or_default())
}

/// The last non-empty line of `text`, trimmed.
pub fn last_line(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    Some(crate::spec::names::shorten(line, 300).into_owned())
}

/// The line that explains an unfixable end of the flow container `c` when its termination
/// message did not (a kubelet that keeps none): the last line of its log tail.
pub fn missing_line(t: &ContainerStateTerminated, log_tail: &str) -> Option<String> {
    if !is_unfixable(t) || termination_line(t).is_some() {
        return None;
    }
    last_line(log_tail)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{json, Value};

    use super::super::{verdict, Snapshot};
    use super::*;

    fn rules() -> Rules {
        Rules {
            flow_container: "flow".into(),
            image_pull_grace: Duration::from_secs(120),
            start_timeout: Duration::from_secs(300),
            deadline: None,
            run_secret: String::new(),
            failed_create_grace: Duration::from_secs(120),
        }
    }

    fn pod(policy: &str, flow: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "flow"}]},
            "status": {"phase": "Failed", "containerStatuses": [flow]},
        }))
        .expect("a Pod")
    }

    fn flow(state: Value, last: Value) -> Value {
        json!({"name": "flow", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
               "state": state, "lastState": last})
    }

    fn decide(p: Pod) -> Option<Outcome> {
        let mut s = Snapshot::new(rules(), "uid");
        s.track(p, Instant::now());
        verdict(&s, Instant::now())
    }

    fn ended(code: i32, reason: &str, message: &str) -> Value {
        json!({"terminated": {"exitCode": code, "reason": reason, "message": message}})
    }

    #[test]
    fn kjenv_s_own_pod_failure_policy_rule_is_named_as_the_failure_it_stands_for() {
        let msg = |code: i32, index: u32| {
            format!(
                "Container flow for pod default/j-abcde failed with exit code {code} matching \
                 FailJob rule at index {index}"
            )
        };
        let reason = |o: Option<Outcome>| match o {
            Some(Outcome::Stuck { reason, pod, .. }) => format!("{reason} {pod}"),
            other => format!("{other:?}"),
        };
        assert_eq!(
            reason(own_rule_outcome(&rules(), &msg(66, 0))),
            "FlowNotLoaded j-abcde"
        );
        assert_eq!(
            reason(own_rule_outcome(&rules(), &msg(127, 0))),
            "CommandCannotRun j-abcde"
        );
        assert!(
            own_rule_outcome(&rules(), &msg(42, 1)).is_none(),
            "a user's own rule"
        );
        let other = "Container sidecar for pod default/j-abcde failed with exit code 66 matching";
        assert!(
            own_rule_outcome(&rules(), other).is_none(),
            "not the flow container"
        );
    }

    #[test]
    fn each_unfixable_end_fails_the_wait_with_its_line() {
        let rows = [
            (
                66,
                "Error",
                "kjenv: cannot read the flow file /f: FileNotFoundError: x",
                "FlowNotLoaded",
            ),
            (127, "Error", "", "CommandCannotRun"),
            (126, "Error", "", "CommandCannotRun"),
            (
                128,
                "StartError",
                "chdir /nope: no such file",
                "CommandCannotRun",
            ),
            (
                1,
                "ContainerCannotRun",
                "exec format error",
                "CommandCannotRun",
            ),
        ];
        for (code, reason, message, want) in rows {
            let got = decide(pod("Never", flow(ended(code, reason, message), json!({}))));
            let Some(Outcome::Stuck {
                reason: r,
                message: m,
                ..
            }) = got
            else {
                panic!("{code}: {got:?}");
            };
            assert_eq!(r, want, "{code}");
            assert!(m.ends_with("no retry can fix that"), "{m}");
            if !message.is_empty() {
                assert!(m.contains(message), "{m}");
            }
        }
    }

    #[test]
    fn a_flow_that_failed_or_succeeded_is_not_this_rule() {
        for code in [0, 1, 2, 137] {
            let p = pod("Never", flow(ended(code, "Error", ""), json!({})));
            assert!(unfixable(&p_track(p), &rules()).is_none(), "{code}");
        }
    }

    #[test]
    fn under_on_failure_the_last_state_counts() {
        let waiting = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let got = decide(pod("OnFailure", flow(waiting, ended(66, "Error", ""))));
        assert!(matches!(got, Some(Outcome::Stuck { reason, .. }) if reason == "FlowNotLoaded"));
    }

    #[test]
    fn the_log_gives_the_line_a_termination_message_did_not() {
        let t = ContainerStateTerminated {
            exit_code: 66,
            ..Default::default()
        };
        assert_eq!(
            missing_line(&t, "a\nkjenv: cannot load the flow\n\n").as_deref(),
            Some("kjenv: cannot load the flow")
        );
        let said = ContainerStateTerminated {
            message: Some("why".into()),
            ..t.clone()
        };
        assert_eq!(missing_line(&said, "a"), None);
        let failed = ContainerStateTerminated {
            exit_code: 1,
            ..Default::default()
        };
        assert_eq!(missing_line(&failed, "a"), None);
    }

    fn p_track(pod: Pod) -> PodTrack {
        PodTrack {
            pod,
            pull_error_since: None,
            unschedulable_since: None,
            own_secret_missing_since: None,
        }
    }
}
