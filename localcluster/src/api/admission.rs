//! What kube-apiserver's admission plugins add to a pod on create, beyond the pod strategy's
//! defaults ([`admit_pod`]): the DefaultTolerationSeconds plugin's NoExecute tolerations for
//! not-ready and unreachable nodes (300 s), unless the pod already tolerates those taints, and
//! the ServiceAccount plugin's projected `kube-api-access-…` token volume, mounted read-only in
//! every container (the emulator's kubelet gives processes a KUBECONFIG instead; the real
//! tier's node agent fills the volume through the TokenRequest API).

use serde_json::{json, Value};

/// The taints DefaultTolerationSeconds tolerates for a bounded time, in the order it adds them.
const TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
/// The plugin's `--default-not-ready-toleration-seconds` / `--default-unreachable-…` default.
const SECONDS: i64 = 300;

/// Where the ServiceAccount plugin mounts the token volume.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The bound token's lifetime the plugin asks for (an hour and 7 s, so that a kubelet's
/// refresh at 80% is not at the hour).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Everything admission adds to a new pod's spec (create only, as the plugins do).
pub fn admit_pod(spec: &mut Value) {
    default_toleration_seconds(spec);
    mount_service_account_token(spec);
}

/// The projected volume the ServiceAccount plugin adds: the token, the cluster's CA bundle
/// (`kube-root-ca.crt`) and the pod's namespace.
fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}})
}

/// Mounts a token volume at [`TOKEN_MOUNT_PATH`] in every init and regular container that has
/// nothing mounted there, adding the volume when one of them needed it; nothing when the pod
/// opts out (`automountServiceAccountToken: false`).
pub fn mount_service_account_token(spec: &mut Value) {
    if spec["automountServiceAccountToken"] == json!(false) {
        return;
    }
    let name = crate::meta::generate_name("kube-api-access-");
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers.iter_mut().filter(|c| c.is_object()) {
            let mounts = &c["volumeMounts"];
            let mounted = mounts
                .as_array()
                .is_some_and(|m| m.iter().any(|v| v["mountPath"] == TOKEN_MOUNT_PATH));
            if mounted {
                continue;
            }
            if !mounts.is_array() {
                c["volumeMounts"] = json!([]);
            }
            if let Some(m) = c["volumeMounts"].as_array_mut() {
                m.push(json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
                needed = true;
            }
        }
    }
    if needed {
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        if let Some(v) = spec["volumes"].as_array_mut() {
            v.push(token_volume(&name));
        }
    }
}

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
    fn every_container_mounts_one_token_volume() {
        let mut s = json!({"initContainers": [{"name": "i"}], "containers": [
            {"name": "a"},
            {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
        ]});
        mount_service_account_token(&mut s);
        let volumes = s["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(s["initContainers"][0]["volumeMounts"][0]["name"], name);
        assert_eq!(s["containers"][0]["volumeMounts"][0]["readOnly"], true);
        assert_eq!(
            s["containers"][1]["volumeMounts"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn no_token_volume_when_the_pod_opts_out_or_has_one_everywhere() {
        let mut out = json!({"automountServiceAccountToken": false, "containers": [{"name": "a"}]});
        mount_service_account_token(&mut out);
        assert!(out.get("volumes").is_none());
        let mount = json!([{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]);
        let mut own = json!({"containers": [{"name": "a", "volumeMounts": mount}]});
        mount_service_account_token(&mut own);
        assert!(own.get("volumes").is_none());
    }

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
