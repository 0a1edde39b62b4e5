//! `spec.podFailurePolicy`: which rule a failed pod matches (the job controller's
//! `matchPodFailurePolicy`), in rule order, on container exit codes or pod conditions.

use serde_json::Value;

/// What a matched rule (or none) says about one failed pod.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the Job at once, with this condition message.
    FailJob(String),
    /// The failure does not count toward `backoffLimit`.
    Ignore,
    /// The failure counts (also: no rule matched).
    Count,
    /// Fail the pod's completion index (it is not retried).
    FailIndex,
}

/// The first terminated container (main, then init) with a non-zero exit code the rule's
/// `onExitCodes` matches.
fn matching_container<'a>(status: &'a Value, req: &Value) -> Option<&'a Value> {
    let wanted = req["containerName"].as_str();
    let values: Vec<i64> = req["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    let op_in = match req["operator"].as_str() {
        Some("In") => true,
        Some("NotIn") => false,
        _ => return None,
    };
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|list| status[*list].as_array().into_iter().flatten())
        .find(|c| {
            let code = c["state"]["terminated"]["exitCode"].as_i64();
            let named = wanted.is_none_or(|w| c["name"] == w);
            code.is_some_and(|code| named && code != 0 && values.contains(&code) == op_in)
        })
}

/// The first pod condition one of the rule's `onPodConditions` patterns matches (type and
/// status; the status defaults to True).
fn matching_condition<'a>(status: &'a Value, patterns: &[Value]) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| {
        patterns.iter().any(|p| {
            let want = p["status"].as_str().unwrap_or("True");
            c["type"] == p["type"] && c["status"] == want
        })
    })
}

fn action_of(rule: &Value, fail_job: impl FnOnce() -> String) -> Option<Action> {
    Some(match rule["action"].as_str()? {
        "Ignore" => Action::Ignore,
        "Count" => Action::Count,
        "FailIndex" => Action::FailIndex,
        "FailJob" => Action::FailJob(fail_job()),
        _ => return None,
    })
}

/// The action for a failed `pod` under `policy` (`Count` when no rule matches).
pub fn match_pod(policy: &Value, pod: &Value) -> Action {
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap_or(""),
        pod["metadata"]["name"].as_str().unwrap_or(""),
    );
    let status = &pod["status"];
    for (index, rule) in policy["rules"].as_array().into_iter().flatten().enumerate() {
        let verb = rule["action"].as_str().unwrap_or("");
        let found = if rule["onExitCodes"].is_object() {
            matching_container(status, &rule["onExitCodes"]).and_then(|c| {
                action_of(rule, || {
                    format!(
                        "Container {} for pod {ns}/{name} failed with exit code {} matching {verb} rule at index {index}",
                        c["name"].as_str().unwrap_or(""),
                        c["state"]["terminated"]["exitCode"].as_i64().unwrap_or(0),
                    )
                })
            })
        } else if let Some(patterns) = rule["onPodConditions"].as_array() {
            matching_condition(status, patterns).and_then(|c| {
                action_of(rule, || {
                    format!(
                        "Pod {ns}/{name} has condition {} matching {verb} rule at index {index}",
                        c["type"].as_str().unwrap_or("")
                    )
                })
            })
        } else {
            None
        };
        if let Some(a) = found {
            return a;
        }
    }
    Action::Count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed_pod(code: i64) -> Value {
        json!({"metadata": {"namespace": "ns", "name": "p"}, "status": {"phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True"}],
            "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}})
    }

    #[test]
    fn rules_match_in_order_with_the_real_message() {
        let policy = json!({"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [5]}}]});
        assert_eq!(match_pod(&policy, &failed_pod(1)), Action::Ignore);
        assert_eq!(
            match_pod(&policy, &failed_pod(42)),
            Action::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into())
        );
        assert_eq!(match_pod(&policy, &failed_pod(7)), Action::Count);
        assert_eq!(match_pod(&policy, &failed_pod(5)), Action::Count);
    }

    #[test]
    fn pod_conditions_match_type_and_status() {
        let policy = json!({"rules": [{"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget"}]}]});
        assert_eq!(
            match_pod(&policy, &failed_pod(3)),
            Action::FailJob(
                "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0".into()
            )
        );
        let other = json!({"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "False"}]}]});
        assert_eq!(match_pod(&other, &failed_pod(3)), Action::Count);
    }
}
