//! Today's clients against the local cluster over HTTPS: protobuf bodies (encoded and decoded
//! with k8s-pb's generated types, independent of the emulator's own codec), the captured
//! OpenAPI documents with their caching headers, and fieldValidation Strict/Warn/Ignore.

mod support;

use bytes::Bytes;
use hyper::Request;
use k8s_pb::api::batch::v1 as pb_batch;
use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::client::Body;
use kube::Client;
use prost::Message;
use serde_json::{json, Value};

const PB: &str = "application/vnd.kubernetes.protobuf";

/// One answer: status, headers, body.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }
}

async fn send(
    client: &Client,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .send(b.body(Body::from(body)).expect("request"))
        .await
        .expect("an answer");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect_bytes().await.expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

/// `k8s\0` + runtime.Unknown around a message, as client-go sends it.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn open_envelope(body: &[u8]) -> Unknown {
    let inner = body.strip_prefix(b"k8s\0").expect("the protobuf magic");
    Unknown::decode(inner).expect("a runtime.Unknown")
}

fn pb_job(name: &str) -> pb_batch::Job {
    pb_batch::Job {
        metadata: Some(ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        }),
        spec: Some(pb_batch::JobSpec {
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(ObjectMeta::default()),
                spec: Some(pb_core::PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![pb_core::Container {
                        name: Some("main".into()),
                        image: Some("busybox".into()),
                        command: vec!["sh".into(), "-c".into(), "exit 0".into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(pb_batch::JobStatus::default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protobuf_job_is_created_and_answered_in_protobuf() {
    let lc = support::start_with(|o| o.kubelet = false);
    let client = support::client(&lc).await;
    let body = envelope("batch/v1", "Job", pb_job("pbjob").encode_to_vec());
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let a = send(
        &client,
        "POST",
        jobs,
        &[
            ("content-type", PB),
            (
                "accept",
                "application/vnd.kubernetes.protobuf,application/json",
            ),
        ],
        body,
    )
    .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), PB);
    let unknown = open_envelope(&a.body);
    let tm = unknown.type_meta.expect("typeMeta");
    assert_eq!(
        (tm.api_version.as_deref(), tm.kind.as_deref()),
        (Some("batch/v1"), Some("Job"))
    );
    let job = pb_batch::Job::decode(unknown.raw.unwrap_or_default().as_slice()).expect("a Job");
    let meta = job.metadata.expect("metadata");
    assert_eq!(meta.name.as_deref(), Some("pbjob"));
    assert!(meta.uid.is_some_and(|u| u.len() == 36));
    assert!(meta
        .creation_timestamp
        .is_some_and(|t| t.seconds.unwrap_or(0) > 1_700_000_000));
    let spec = job.spec.expect("spec");
    assert_eq!(
        spec.backoff_limit,
        Some(6),
        "defaulted as for a JSON create"
    );
    let containers = spec
        .template
        .and_then(|t| t.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    assert_eq!(containers[0].command, vec!["sh", "-c", "exit 0"]);
    // The same object, read as JSON.
    let a = send(
        &client,
        "GET",
        &format!("{jobs}/pbjob"),
        &[("accept", "application/json")],
        vec![],
    )
    .await;
    let j = a.json();
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["sh", "-c", "exit 0"])
    );
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_secrets_keep_their_bytes_and_errors_are_protobuf_statuses() {
    let lc = support::start_with(|o| o.kubelet = false);
    let client = support::client(&lc).await;
    let secret = pb_core::Secret {
        metadata: Some(ObjectMeta {
            name: Some("pbs".into()),
            ..Default::default()
        }),
        data: [("k".to_string(), vec![0u8, 1, 2, 255])]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let secrets = "/api/v1/namespaces/default/secrets";
    let a = send(
        &client,
        "POST",
        secrets,
        &[("content-type", PB)],
        envelope("v1", "Secret", secret.encode_to_vec()),
    )
    .await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["data"]["k"], "AAEC/w==");
    // A second create: 409, answered as a protobuf Status to a protobuf client.
    let a = send(
        &client,
        "POST",
        secrets,
        &[("content-type", PB), ("accept", PB)],
        envelope("v1", "Secret", secret.encode_to_vec()),
    )
    .await;
    assert_eq!(a.status, 409);
    let unknown = open_envelope(&a.body);
    assert_eq!(
        unknown.type_meta.and_then(|t| t.kind).as_deref(),
        Some("Status")
    );
    let status = k8s_pb::apimachinery::pkg::apis::meta::v1::Status::decode(
        unknown.raw.unwrap_or_default().as_slice(),
    )
    .expect("a Status");
    assert_eq!(
        status.message.as_deref(),
        Some("secrets \"pbs\" already exists")
    );
    assert_eq!(status.code, Some(409));
    // Garbage is a one-line 400, not a panic.
    let a = send(
        &client,
        "POST",
        secrets,
        &[("content-type", PB)],
        b"k8s\0\x0a\xff\xff".to_vec(),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["message"], "the object provided is unrecognized (must be of type Secret): unexpected EOF (the body of a Secret is not quoted)");
    let a = send(
        &client,
        "POST",
        secrets,
        &[("content-type", PB)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        a.json()["message"],
        "the object provided is unrecognized (must be of type Secret): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (the body of a Secret is not quoted)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_are_served_with_their_hashes_and_etags() {
    let lc = support::start_with(|o| o.kubelet = false);
    let client = support::client(&lc).await;
    let a = send(&client, "GET", "/openapi/v3", &[], vec![]).await;
    assert_eq!(a.header("content-type"), "text/plain; charset=utf-8");
    let index = a.json();
    let url = index["paths"]["apis/batch/v1"]["serverRelativeURL"]
        .as_str()
        .expect("batch/v1 listed")
        .to_string();
    assert!(
        index["paths"].get("apis/apps/v1").is_none(),
        "only what the local cluster serves"
    );
    let hash = url.split("hash=").nth(1).expect("a hash").to_string();
    let a = send(
        &client,
        "GET",
        &url,
        &[("accept", "application/json")],
        vec![],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("cache-control"), "public, immutable");
    assert_eq!(a.header("etag"), format!("\"{hash}\""));
    assert!(a.json()["components"]["schemas"]["io.k8s.api.batch.v1.JobSpec"].is_object());
    let a = send(
        &client,
        "GET",
        "/openapi/v3/apis/batch/v1",
        &[("if-none-match", &format!("\"{hash}\""))],
        vec![],
    )
    .await;
    assert_eq!(a.status, 304);
    // A stale hash is redirected to the current one, uncached.
    let a = send(
        &client,
        "GET",
        "/openapi/v3/apis/batch/v1?hash=0",
        &[],
        vec![],
    )
    .await;
    assert_eq!(a.status, 301);
    assert_eq!(a.header("location"), url);
    assert_eq!(a.header("cache-control"), "no-cache, private");
    assert_eq!(
        send(&client, "GET", "/openapi/v3/apis/apps/v1", &[], vec![])
            .await
            .status,
        404
    );
    let a = send(
        &client,
        "GET",
        "/openapi/v2",
        &[(
            "accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )],
        vec![],
    )
    .await;
    assert_eq!(
        a.header("content-type"),
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert!(a.body.len() > 100_000);
    let a = send(
        &client,
        "GET",
        "/openapi/v2",
        &[("accept", "application/json")],
        vec![],
    )
    .await;
    assert_eq!(a.json()["swagger"], "2.0");
}

fn typo_job(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"bogus": 1, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["true"], "comand": ["x"]}]}}}}))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_validation_strict_warn_and_ignore() {
    let lc = support::start_with(|o| o.kubelet = false);
    let client = support::client(&lc).await;
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let json_ct = [("content-type", "application/json")];
    let a = send(
        &client,
        "POST",
        &format!("{jobs}?fieldValidation=Strict"),
        &json_ct,
        typo_job("s"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["message"], "Job in version \"v1\" cannot be handled as a Job: strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.template.spec.containers[0].comand\"");
    let dup =
        br#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"d","name":"d2"}}"#.to_vec();
    let a = send(
        &client,
        "POST",
        &format!("{jobs}?fieldValidation=Strict"),
        &json_ct,
        dup,
    )
    .await;
    assert_eq!(a.json()["message"], "Job in version \"v1\" cannot be handled as a Job: strict decoding error: duplicate field \"metadata.name\"");
    // No parameter means Warn: created, one warning per field, the unknown fields dropped.
    let a = send(&client, "POST", jobs, &json_ct, typo_job("w")).await;
    assert_eq!(a.status, 201);
    assert_eq!(
        a.warnings(),
        vec![
            r#"299 - "unknown field \"spec.bogus\"""#,
            r#"299 - "unknown field \"spec.template.spec.containers[0].comand\"""#,
        ]
    );
    let j = a.json();
    assert!(j["spec"].get("bogus").is_none());
    assert!(j["spec"]["template"]["spec"]["containers"][0]
        .get("comand")
        .is_none());
    let a = send(
        &client,
        "POST",
        &format!("{jobs}?fieldValidation=Ignore"),
        &json_ct,
        typo_job("i"),
    )
    .await;
    assert_eq!((a.status, a.warnings().len()), (201, 0));
    let a = send(
        &client,
        "POST",
        &format!("{jobs}?fieldValidation=Nope"),
        &json_ct,
        typo_job("n"),
    )
    .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["message"], "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Nope\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"");
    // Patches: a strategic merge patch is checked itself and printed in Go's map form.
    let smp = [("content-type", "application/strategic-merge-patch+json")];
    let patch = br#"{"metadata":{"labels":{"a":"b"}},"spec":{"bogus":1}}"#.to_vec();
    let a = send(
        &client,
        "PATCH",
        &format!("{jobs}/w?fieldValidation=Strict"),
        &smp,
        patch.clone(),
    )
    .await;
    assert_eq!(a.status, 422);
    assert_eq!(a.json()["message"], " \"\" is invalid: patch: Invalid value: \"map[metadata:map[labels:map[a:b]] spec:map[bogus:1]]\": strict decoding error: unknown field \"spec.bogus\"");
    let a = send(&client, "PATCH", &format!("{jobs}/w"), &smp, patch).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.warnings(),
        vec![r#"299 - "unknown field \"spec.bogus\"""#]
    );
    assert_eq!(a.json()["metadata"]["labels"]["a"], "b");
    // A PUT of what the server answered has nothing unknown in it.
    let put = serde_json::to_vec(&a.json()).expect("json");
    let a = send(
        &client,
        "PUT",
        &format!("{jobs}/w?fieldValidation=Strict"),
        &json_ct,
        put,
    )
    .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}
