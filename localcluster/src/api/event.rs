//! core/v1 Events as kube-apiserver stores and answers them: the fields its JSON always
//! carries (`firstTimestamp`/`lastTimestamp`/`eventTime` null, `reportingComponent`/
//! `reportingInstance` "", `source` {}), and the legacy validation that the involved object's
//! namespace is the Event's.

use serde_json::{json, Value};

use crate::error::Cause;
use crate::store::meta_str;

/// Sets what a Go `core/v1.Event` serialises even when unset.
pub fn default_fields(event: &mut Value) {
    let Some(m) = event.as_object_mut() else {
        return;
    };
    for (field, empty) in [
        ("source", json!({})),
        ("firstTimestamp", Value::Null),
        ("lastTimestamp", Value::Null),
        ("eventTime", Value::Null),
        ("reportingComponent", json!("")),
        ("reportingInstance", json!("")),
    ] {
        m.entry(field).or_insert(empty);
    }
}

/// kube-apiserver's `legacyValidateEvent` namespace rule: an Event without `eventTime` names
/// an object of its own namespace (or none, for Events in `default`); one with `eventTime`
/// may omit the namespace only in `default` or `kube-system`.
pub fn validate_namespace(event: &Value, causes: &mut Vec<Cause>) {
    let ns = meta_str(event, "namespace");
    let involved = event["involvedObject"]["namespace"].as_str().unwrap_or("");
    let has_event_time = event["eventTime"].as_str().is_some_and(|t| !t.is_empty());
    let ok = match (has_event_time, involved.is_empty()) {
        (false, true) => ns.is_empty() || ns == "default",
        (false, false) => ns == involved,
        (true, true) => ns == "default" || ns == "kube-system",
        (true, false) => true,
    };
    if !ok {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            &json!(involved),
            "does not match event.namespace",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_serialise_as_go_does() {
        let mut e = json!({"source": {"component": "x"}, "count": 1});
        default_fields(&mut e);
        assert_eq!(e["source"]["component"], "x");
        assert!(e["firstTimestamp"].is_null() && e.get("eventTime").is_some());
        assert_eq!(e["reportingInstance"], "");
    }

    #[test]
    fn the_involved_namespace_must_match() {
        let mut causes = Vec::new();
        let ev = |ns: &str, inv: &str| json!({"metadata": {"namespace": ns}, "involvedObject": {"namespace": inv}});
        validate_namespace(&ev("a", "a"), &mut causes);
        validate_namespace(&ev("default", ""), &mut causes);
        assert!(causes.is_empty());
        validate_namespace(&ev("a", "b"), &mut causes);
        validate_namespace(&ev("a", ""), &mut causes);
        assert_eq!(causes.len(), 2);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"b\": does not match event.namespace"
        );
    }
}
