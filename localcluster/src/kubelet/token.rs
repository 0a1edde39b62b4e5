//! The ServiceAccount admission plugin's projected `kube-api-access-*` volume, made usable by
//! a process: a bound token from the TokenRequest API for the pod's ServiceAccount, the
//! `kube-root-ca.crt` ConfigMap and the namespace, written as files under the pod's directory
//! (processes cannot see `mountPath`) and as a kubeconfig the pod's `KUBECONFIG` points at.

use std::path::{Path, PathBuf};

use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::api::NodeConfig;
use crate::store::meta_str;

/// The projected volume that carries a `serviceAccountToken` source, if the pod has one:
/// (volume name, token audience, expiration seconds).
fn token_volume(pod: &Value) -> Option<(String, Option<String>, Option<i64>)> {
    pod["spec"]["volumes"].as_array()?.iter().find_map(|v| {
        let sources = v["projected"]["sources"].as_array()?;
        let t = sources
            .iter()
            .find(|s| s.get("serviceAccountToken").is_some())?;
        let t = &t["serviceAccountToken"];
        Some((
            v["name"].as_str().unwrap_or("kube-api-access").to_owned(),
            t["audience"].as_str().map(str::to_owned),
            t["expirationSeconds"].as_i64(),
        ))
    })
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// Materialises the pod's token volume and returns the path of its kubeconfig; `None` when
/// the pod has no token volume (`automountServiceAccountToken: false`).
///
/// # Errors
/// A message when the token or the CA cannot be fetched or the files cannot be written.
pub(super) async fn pod_kubeconfig(
    client: &kube::Client,
    config: &NodeConfig,
    server: &str,
    pod: &Value,
) -> Result<Option<PathBuf>, String> {
    let Some((volume, audience, expiration)) = token_volume(pod) else {
        return Ok(None);
    };
    let ns = meta_str(pod, "namespace");
    let name = meta_str(pod, "name");
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().collect(),
            expiration_seconds: Some(expiration.unwrap_or(3607)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.to_owned()),
                uid: Some(meta_str(pod, "uid").to_owned()),
            }),
        },
        ..TokenRequest::default()
    };
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let token = sas
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("token request for serviceaccount {ns}/{sa}: {e}"))?
        .status
        .map(|s| s.token)
        .ok_or("the token request returned no token")?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let ca = cms
        .get_opt("kube-root-ca.crt")
        .await
        .map_err(|e| format!("configmap {ns}/kube-root-ca.crt: {e}"))?
        .and_then(|c| c.data)
        .and_then(|d| d.get("ca.crt").cloned())
        .unwrap_or_default();
    let dir = config.pod_dir(ns, name);
    let files = dir.join("volumes").join(&volume);
    let io = |e: std::io::Error| format!("writing {}: {e}", files.display());
    std::fs::create_dir_all(&files).map_err(io)?;
    write_private(&files.join("token"), &token).map_err(io)?;
    write_private(&files.join("ca.crt"), &ca).map_err(io)?;
    write_private(&files.join("namespace"), ns).map_err(io)?;
    let path = dir.join("kubeconfig");
    let text = kubeconfig(server, &ca, &token, ns);
    write_private(&path, &text).map_err(io)?;
    Ok(Some(path))
}

fn kubeconfig(server: &str, ca_pem: &str, token: &str, ns: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cluster\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: serviceaccount\n  user:\n    token: {token}\ncontexts:\n- name: pod\n  context:\n    cluster: cluster\n    user: serviceaccount\n    namespace: {ns}\ncurrent-context: pod\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_service_account_token_volume() {
        let pod = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "kube-api-access-x1", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt"}},
            ]}},
        ]}});
        assert_eq!(
            token_volume(&pod),
            Some(("kube-api-access-x1".into(), None, Some(3607)))
        );
        assert_eq!(token_volume(&json!({"spec": {}})), None);
    }
}
