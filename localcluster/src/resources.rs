//! Container resources: quantities (`500m`, `1Gi`) and the pod's QoS class, decided once
//! for the API (on create), the controller (the pods it makes) and the kubelet (a leaf).

use serde_json::{Map, Value};

/// A quantity (`500m`, `1Gi`, `2`) as a number, for comparing requests with limits.
pub fn parse_quantity(q: &Value) -> Option<f64> {
    let s = match q {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => return n.as_f64(),
        _ => return None,
    };
    const SUFFIXES: [(&str, f64); 15] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, mult) in SUFFIXES {
        if let Some(num) = s.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|n| n * mult);
        }
    }
    s.parse::<f64>().ok()
}

/// `status.qosClass` from the containers' resources (init containers included).
pub fn qos_class(pod_spec: &Value) -> &'static str {
    let all: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod_spec[*k].as_array())
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let res = &c["resources"];
        let empty = Map::new();
        let requests = res["requests"].as_object().unwrap_or(&empty);
        let limits = res["limits"].as_object().unwrap_or(&empty);
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let limit = limits.get(r).and_then(parse_quantity);
            // A missing request defaults to the limit.
            let request = requests.get(r).and_then(parse_quantity).or(limit);
            match (limit, request) {
                (Some(l), Some(q)) if (l - q).abs() <= f64::EPSILON * l.abs().max(1.0) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn qos() {
        let best = json!({"containers": [{"name": "a"}]});
        assert_eq!(qos_class(&best), "BestEffort");
        let guaranteed = json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1024Mi"}}}]});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        let only_limits = json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "500m", "memory": "128Mi"}}}]});
        assert_eq!(qos_class(&only_limits), "Guaranteed");
        let burstable = json!({"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "100m"}}}, {"name": "b"}]});
        assert_eq!(qos_class(&burstable), "Burstable");
        assert_eq!(parse_quantity(&json!("1.5Gi")), Some(1.5 * 1073741824.0));
        assert_eq!(parse_quantity(&json!(2)), Some(2.0));
        assert_eq!(parse_quantity(&json!("x")), None);
    }

    #[test]
    fn qos_compares_quantities_not_their_spelling() {
        // The API's old string compare called these Burstable; the kubelet said Guaranteed.
        for (limit, request) in [("1", "1000m"), ("1Gi", "1024Mi"), ("0.5", "500m")] {
            let spec = json!({"containers": [{"name": "a", "resources": {
                "limits": {"cpu": limit, "memory": limit},
                "requests": {"cpu": request, "memory": request}}}]});
            assert_eq!(qos_class(&spec), "Guaranteed", "{limit} vs {request}");
        }
        // Init containers count too (the old API check looked at `containers` only).
        let init = json!({"initContainers": [{"name": "i", "resources": {
            "requests": {"cpu": "100m"}}}], "containers": [{"name": "a"}]});
        assert_eq!(qos_class(&init), "Burstable");
    }
}
