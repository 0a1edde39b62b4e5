//! What kube-apiserver's admission plugins add to a pod on create, beyond the pod strategy's
//! defaults: the DefaultTolerationSeconds plugin's NoExecute tolerations for not-ready and
//! unreachable nodes (300 s), unless the pod already tolerates those taints.

use serde_json::{json, Value};

/// The taints DefaultTolerationSeconds tolerates for a bounded time, in the order it adds them.
const TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
/// The plugin's `--default-not-ready-toleration-seconds` / `--default-unreachable-…` default.
const SECONDS: i64 = 300;

/// Does one toleration already cover `key`'s NoExecute taint (an empty key or effect is a
/// wildcard, as the plugin reads it)?
fn covers(t: &Value, key: &str) -> bool {
    let k = t["key"].as_str().unwrap_or("");
    let effect = t["effect"].as_str().unwrap_or("");
    (k.is_empty() || k == key) && (effect.is_empty() || effect == "NoExecute")
}

/// Adds the default tolerations to a new pod's spec (create only, as the plugin does).
pub fn default_toleration_seconds(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    let list = m.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in TAINTS {
        if !list.iter().any(|t| covers(t, key)) {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_both_once() {
        let mut s = json!({});
        default_toleration_seconds(&mut s);
        assert_eq!(s["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(s["tolerations"][0]["key"], "node.kubernetes.io/not-ready");
        default_toleration_seconds(&mut s);
        assert_eq!(s["tolerations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn an_existing_toleration_is_kept() {
        let mut s = json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 7}]});
        default_toleration_seconds(&mut s);
        let t = s["tolerations"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 7);
        assert_eq!(t[1]["key"], "node.kubernetes.io/not-ready");
        let mut all = json!({"tolerations": [{"operator": "Exists"}]});
        default_toleration_seconds(&mut all);
        assert_eq!(all["tolerations"].as_array().unwrap().len(), 1);
    }
}
