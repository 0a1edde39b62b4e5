//! Failures no retry can fix fail the Job at once: with `restartPolicy: Never`, the rendered Job
//! gets a `podFailurePolicy` rule that fails it (`FailJob`) when the flow container exits with
//! one of [`UNFIXABLE_EXIT_CODES`], after the user's own rules (theirs keep their indices, which
//! the Job's failure message names, and match first). (`OnFailure` allows no
//! podFailurePolicy: there the wait stops the retries, see `job::stop`.)

use serde_json::{json, Value};

/// The flow container's exit codes that no retry can change: the flow could not be loaded (the
/// in-container runner's 66, `EXIT_FLOW_NOT_LOADED` in `python/kjenv/_common.py`), the command
/// is not executable (126) or not found (127), the container could not start (128, a
/// `StartError`). Sorted, as the API requires.
pub const UNFIXABLE_EXIT_CODES: [i32; 4] = [66, 126, 127, 128];

/// A Job's podFailurePolicy holds at most this many rules.
const MAX_RULES: usize = 20;

/// The rule for the flow container `container`.
pub fn fail_job_rule(container: &str) -> Value {
    json!({
        "action": "FailJob",
        "onExitCodes": {
            "containerName": container,
            "operator": "In",
            "values": UNFIXABLE_EXIT_CODES,
        },
    })
}

/// Put [`fail_job_rule`] last in the Job's podFailurePolicy when its pods never restart in
/// place; a Job that has the rule already, or has no room for it, is left as it is.
pub fn fail_job_on_unfixable_exit(job: &mut Value) {
    let pod = job.pointer("/spec/template/spec");
    let policy = pod
        .and_then(|p| p.get("restartPolicy"))
        .and_then(Value::as_str);
    let container = pod
        .and_then(|p| p.pointer("/containers/0/name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (Some("Never"), Some(container)) = (policy, container) else {
        return;
    };
    let Some(spec) = job.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let slot = spec
        .entry("podFailurePolicy")
        .or_insert_with(|| json!({"rules": []}));
    let Some(policy) = slot.as_object_mut() else {
        return;
    };
    let rules = policy.entry("rules").or_insert_with(|| json!([]));
    append(rules, fail_job_rule(&container));
}

fn append(rules: &mut Value, rule: Value) {
    let Some(list) = rules.as_array_mut() else {
        return;
    };
    if list.contains(&rule) || list.len() >= MAX_RULES {
        return;
    }
    list.push(rule);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(policy: &str, pfp: Option<Value>) -> Value {
        let mut job = json!({"spec": {"template": {"spec": {
            "restartPolicy": policy, "containers": [{"name": "main"}, {"name": "proxy"}]}}}});
        if let Some(pfp) = pfp {
            job["spec"]["podFailurePolicy"] = pfp;
        }
        job
    }

    #[test]
    fn never_gets_the_rule_for_the_flow_container_after_the_user_s() {
        let mut j = job("Never", None);
        fail_job_on_unfixable_exit(&mut j);
        assert_eq!(
            j["spec"]["podFailurePolicy"]["rules"],
            json!([fail_job_rule("main")])
        );
        assert_eq!(
            j["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
            json!([66, 126, 127, 128])
        );
        let theirs = json!({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]});
        let mut j = job("Never", Some(json!({"rules": [theirs.clone()]})));
        fail_job_on_unfixable_exit(&mut j);
        fail_job_on_unfixable_exit(&mut j); // a second render adds nothing
        let rules = &j["spec"]["podFailurePolicy"]["rules"];
        assert_eq!(rules, &json!([theirs, fail_job_rule("main")]));
    }

    #[test]
    fn on_failure_and_full_policies_are_left_alone() {
        let mut j = job("OnFailure", None);
        fail_job_on_unfixable_exit(&mut j);
        assert!(j["spec"].get("podFailurePolicy").is_none());
        let full: Vec<Value> = (0..20)
            .map(|i| json!({"action": "Count", "i": i}))
            .collect();
        let mut j = job("Never", Some(json!({"rules": full.clone()})));
        fail_job_on_unfixable_exit(&mut j);
        assert_eq!(j["spec"]["podFailurePolicy"]["rules"], json!(full));
    }
}
