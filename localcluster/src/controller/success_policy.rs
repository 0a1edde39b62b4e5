//! `spec.successPolicy` of Indexed Jobs: the first rule the succeeded indexes meet (the job
//! controller's `matchSuccessPolicy`), whose position makes the condition's message.

use std::collections::BTreeSet;

use serde_json::Value;

use super::sync::parse_indexes;

/// The reason of `SuccessCriteriaMet` and `Complete` when a success policy rule matched.
pub const REASON: &str = "SuccessPolicy";

/// `Matched rules at index N` for the first rule `succeeded` meets, else None. A rule with
/// `succeededIndexes` needs every listed index (below `completions`) to have succeeded, or
/// `succeededCount` of them; one with only `succeededCount` needs that many succeeded
/// indexes. A rule whose `succeededIndexes` names no index is skipped, as the controller does.
pub fn matched(spec: &Value, succeeded: &BTreeSet<i64>) -> Option<String> {
    let rules = spec["successPolicy"]["rules"].as_array()?;
    if succeeded.is_empty() {
        return None;
    }
    let completions = spec["completions"].as_i64().unwrap_or(0);
    let count = |rule: &Value| rule["succeededCount"].as_i64();
    let index = rules
        .iter()
        .position(|rule| match rule["succeededIndexes"].as_str() {
            Some(text) => {
                let required: BTreeSet<i64> = parse_indexes(text)
                    .into_iter()
                    .filter(|i| *i < completions)
                    .collect();
                let done = required.intersection(succeeded).count() as i64;
                !required.is_empty()
                    && match count(rule) {
                        Some(n) => done >= n,
                        None => done == required.len() as i64,
                    }
            }
            None => count(rule).is_some_and(|n| n <= succeeded.len() as i64),
        })?;
    Some(format!("Matched rules at index {index}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(rules: Value) -> Value {
        json!({"completions": 5, "successPolicy": {"rules": rules}})
    }

    #[test]
    fn the_first_rule_the_succeeded_indexes_meet_names_the_match() {
        let done: BTreeSet<i64> = [0, 2].into();
        let cases = [
            (json!([{"succeededIndexes": "0"}]), Some(0)),
            (json!([{"succeededIndexes": "0-1"}]), None),
            (
                json!([{"succeededIndexes": "0-3", "succeededCount": 2}]),
                Some(0),
            ),
            (
                json!([{"succeededIndexes": "1,3"}, {"succeededCount": 2}]),
                Some(1),
            ),
            (json!([{"succeededCount": 3}]), None),
            (
                json!([{"succeededIndexes": "7-9"}, {"succeededIndexes": "2"}]),
                Some(1),
            ),
        ];
        for (rules, want) in cases {
            let got = matched(&spec(rules.clone()), &done);
            assert_eq!(
                got,
                want.map(|i| format!("Matched rules at index {i}")),
                "{rules}"
            );
        }
        assert_eq!(matched(&json!({"completions": 5}), &done), None);
        assert_eq!(
            matched(&spec(json!([{"succeededCount": 1}])), &BTreeSet::new()),
            None
        );
    }
}
