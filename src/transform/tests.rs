use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::context::{CloudSettings, Resolved};
use crate::naming::MAX_JOB_NAME;
use crate::secret::SecretString;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    crate::spec::from_file(&path).expect("fixture loads")
}

fn values() -> Resolved {
    Resolved {
        image: "registry/flows:v1".into(),
        flow_run_id: "run-1".into(),
        namespace: "default".into(),
        flow_file_path: "/root/.prefect/flow_env.prefect".into(),
    }
}

fn render_with(spec: &Value, cloud: &CloudSettings, unique: bool) -> Rendered {
    let v = values();
    render(
        spec,
        &RenderOptions {
            identifier: "ident-1",
            values: &v,
            cloud,
            unique_job_name: unique,
            storage: None,
        },
    )
}

fn local(spec: &Value) -> Rendered {
    render_with(spec, &CloudSettings::default(), false)
}

fn env_of(job: &Value, container: usize) -> Vec<Value> {
    job["spec"]["template"]["spec"]["containers"][container]["env"]
        .as_array()
        .unwrap()
        .clone()
}

/// Backend-less: the ten names, then Prefect 0.15's extra loggers.
fn backendless_names() -> Vec<&'static str> {
    let mut names = ENV_NAMES.to_vec();
    names.push("PREFECT__LOGGING__EXTRA_LOGGERS");
    names
}

fn env_map(job: &Value) -> std::collections::HashMap<String, Value> {
    env_of(job, 0)
        .into_iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e))
        .collect()
}

fn env_names(job: &Value, container: usize) -> Vec<String> {
    env_of(job, container)
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn minimal_spec_gets_every_missing_section() {
    let r = local(&fixture("minimal.yaml"));
    let job = &r.job;
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("prefect-job-") && name.len() == 20,
        "{name}"
    );
    assert_eq!(
        job["metadata"]["labels"],
        json!({"identifier": "ident-1", "flow_run_id": "run-1"})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"identifier": "ident-1", "flow_run_id": "run-1"})
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "flow");
    assert_eq!(c["image"], "registry/flows:v1");
    assert_eq!(c["command"], json!(["/bin/sh", "-c"]));
    assert_eq!(c["args"], json!([FLOW_COMMAND]));
    assert_eq!(env_names(job, 0), backendless_names());
    assert!(r.replaced.is_empty());
    assert!(r.secret_name.is_none());
}

#[test]
fn seed_spec_keeps_user_env_first_and_sets_backendless_values() {
    let r = local(&fixture("seed_job_spec.yaml"));
    let job = &r.job;
    assert_eq!(job["metadata"]["name"], "my-prefect-job");
    let names = env_names(job, 0);
    assert_eq!(names[0], "MY_ENV");
    assert_eq!(&names[1..], &backendless_names());
    let env: std::collections::HashMap<String, Value> = env_of(job, 0)
        .into_iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(env["MY_ENV"]["value"], "foo");
    assert_eq!(env["PREFECT__CLOUD__GRAPHQL"]["value"], "");
    assert_eq!(env["PREFECT__CLOUD__AUTH_TOKEN"]["value"], "");
    assert_eq!(env["PREFECT__CONTEXT__FLOW_RUN_ID"]["value"], "run-1");
    assert_eq!(env["PREFECT__CONTEXT__NAMESPACE"]["value"], "default");
    assert_eq!(env["PREFECT__CONTEXT__IMAGE"]["value"], "registry/flows:v1");
    assert_eq!(
        env["PREFECT__CONTEXT__FLOW_FILE_PATH"]["value"],
        "/root/.prefect/flow_env.prefect"
    );
    assert_eq!(env["PREFECT__CLOUD__USE_LOCAL_SECRETS"]["value"], "true");
    assert_eq!(
        env["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"]["value"],
        "prefect.engine.flow_runner.FlowRunner"
    );
    assert_eq!(
        env["PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS"]["value"],
        "prefect.engine.task_runner.TaskRunner"
    );
    assert_eq!(env["PREFECT__LOGGING__LOG_TO_CLOUD"]["value"], "false");
    // The seed's empty image/command/args are not "replaced user content".
    assert!(r.replaced.is_empty(), "{:?}", r.replaced);
}

#[test]
fn seed_resources_spec_keeps_resources_and_restart_policy() {
    let spec = fixture("seed_job_spec_resources.yaml");
    let job = local(&spec).job;
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["resources"],
        spec["spec"]["template"]["spec"]["containers"][0]["resources"]
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["name", "image", "command", "args", "env", "resources"]
    );
}

#[test]
fn sidecars_init_containers_and_unknown_fields_survive() {
    let spec = fixture("sidecar_init.yaml");
    let r = local(&spec);
    let job = &r.job;
    let pod = &job["spec"]["template"]["spec"];
    let orig = &spec["spec"]["template"]["spec"];
    for key in [
        "initContainers",
        "volumes",
        "tolerations",
        "nodeSelector",
        "serviceAccountName",
        "restartPolicy",
    ] {
        assert_eq!(pod[key], orig[key], "{key}");
    }
    assert_eq!(
        pod["containers"][1], orig["containers"][1],
        "sidecar untouched, its env too"
    );
    assert_eq!(pod["containers"][0]["x-unknown-field"], "keep");
    assert_eq!(
        pod["containers"][0]["volumeMounts"],
        orig["containers"][0]["volumeMounts"]
    );
    assert_eq!(job["spec"]["backoffLimit"], 2);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
    assert_eq!(job["metadata"]["annotations"], json!({"team": "data"}));
    assert_eq!(job["metadata"]["labels"]["app"], "etl");
    assert_eq!(job["metadata"]["labels"]["identifier"], "ident-1");
    assert_eq!(
        job["spec"]["template"]["metadata"]["annotations"],
        orig_template_annotations(&spec)
    );
    // user env order kept, same-named entry replaced, no duplicates
    let names = env_names(job, 0);
    assert_eq!(&names[..2], &["KEEP_ME", "AFTER"]);
    assert_eq!(&names[2..], &backendless_names());
    assert_eq!(
        names
            .iter()
            .filter(|n| *n == "PREFECT__CLOUD__AUTH_TOKEN")
            .count(),
        1
    );
    assert_eq!(
        r.replaced,
        vec![
            "containers[flow].image",
            "containers[flow].command",
            "containers[flow].args",
            "containers[flow].env[PREFECT__CLOUD__AUTH_TOKEN]"
        ]
    );
    // top-level key order unchanged
    let keys: Vec<&String> = job["spec"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["backoffLimit", "activeDeadlineSeconds", "template"]);
}

fn orig_template_annotations(spec: &Value) -> Value {
    spec["spec"]["template"]["metadata"]["annotations"].clone()
}

#[test]
fn namespace_is_written_to_metadata() {
    let spec = fixture("sidecar_init.yaml");
    let mut v = values();
    v.namespace = "flows".into();
    let job = render(
        &spec,
        &RenderOptions {
            identifier: "i",
            values: &v,
            cloud: &CloudSettings::default(),
            unique_job_name: false,
            storage: None,
        },
    )
    .job;
    assert_eq!(job["metadata"]["namespace"], "flows");
}

#[test]
fn cloud_mode_uses_a_secret_ref_and_cloud_runners() {
    let cloud = CloudSettings {
        graphql: "https://api.prefect.io".into(),
        auth_token: SecretString::new("tok-SECRET"),
        ..CloudSettings::default()
    };
    let r = render_with(&fixture("seed_job_spec.yaml"), &cloud, false);
    assert_eq!(r.secret_name.as_deref(), Some("my-prefect-job-kjenv"));
    let text = r.job.to_string();
    assert!(!text.contains("tok-SECRET"));
    let env: std::collections::HashMap<String, Value> = env_of(&r.job, 0)
        .into_iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(
        env["PREFECT__CLOUD__AUTH_TOKEN"],
        json!({"name": "PREFECT__CLOUD__AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "my-prefect-job-kjenv", "key": "auth-token"}}})
    );
    assert_eq!(
        env["PREFECT__CLOUD__GRAPHQL"]["value"],
        "https://api.prefect.io"
    );
    assert_eq!(env["PREFECT__CLOUD__USE_LOCAL_SECRETS"]["value"], "false");
    assert_eq!(
        env["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"]["value"],
        "prefect.engine.cloud.CloudFlowRunner"
    );
    assert_eq!(
        env["PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS"]["value"],
        "prefect.engine.cloud.CloudTaskRunner"
    );
    assert_eq!(env["PREFECT__LOGGING__LOG_TO_CLOUD"]["value"], "true");
}

#[test]
fn generate_name_is_settled_at_render_in_every_mode() {
    let spec =
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "flow-"}});
    let cloud = CloudSettings {
        graphql: String::new(),
        auth_token: SecretString::new("t"),
        ..CloudSettings::default()
    };
    let r = render_with(&spec, &cloud, false);
    let name = r.job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("flow-") && name.len() == 10, "{name}");
    assert!(r.job["metadata"].get("generateName").is_none());
    assert_eq!(r.secret_name.unwrap(), format!("{name}-kjenv"));
    // Without a token too: render shows the name execute posts (it used to show generateName
    // and leave the name to the server, so render and execute differed).
    let r = local(&spec);
    assert!(r.job["metadata"].get("generateName").is_none());
    assert!(
        r.name.starts_with("flow-") && r.name.len() == 10,
        "{}",
        r.name
    );
    assert_eq!(r.job["metadata"]["name"], r.name.as_str());
}

#[test]
fn unique_job_name_appends_hex_and_stays_within_63() {
    let r = render_with(
        &fixture("seed_job_spec.yaml"),
        &CloudSettings::default(),
        true,
    );
    let name = r.job["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("my-prefect-job-") && name.len() == "my-prefect-job-".len() + 8,
        "{name}"
    );
    let long = json!({"metadata": {"name": format!("{}-x", "a".repeat(70))}});
    let r = render_with(&long, &CloudSettings::default(), true);
    let name = r.job["metadata"]["name"].as_str().unwrap();
    assert!(name.len() <= MAX_JOB_NAME, "{name}");
    let edge = json!({"metadata": {"name": format!("{}-b", "a".repeat(53))}});
    let name = render_with(&edge, &CloudSettings::default(), true).job["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!name.contains("--") && name.len() <= MAX_JOB_NAME, "{name}");
}

#[test]
fn existing_labels_are_replaced_and_others_kept() {
    let spec = json!({"metadata": {"labels": {"identifier": "x", "flow_run_id": "y", "team": "a"}},
                      "spec": {"template": {"metadata": {"labels": {"identifier": "x", "other": "b"}}}}});
    let job = local(&spec).job;
    assert_eq!(
        job["metadata"]["labels"],
        json!({"identifier": "ident-1", "flow_run_id": "run-1", "team": "a"})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"identifier": "ident-1", "other": "b", "flow_run_id": "run-1"})
    );
}

#[test]
fn restart_policy_on_failure_is_kept_empty_is_defaulted() {
    let spec = json!({"spec": {"template": {"spec": {"restartPolicy": "", "containers": []}}}});
    let job = local(&spec).job;
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["name"],
        "flow"
    );
}

#[test]
fn server_mode_uses_cloud_runners_the_endpoint_and_no_secret() {
    let cloud = CloudSettings {
        graphql: "http://prefect.example:4200/graphql".into(),
        api: "http://prefect.example:4200".into(),
        backend: "server".into(),
        extra_loggers: "['dask']".into(),
        ..CloudSettings::default()
    };
    let r = render_with(&fixture("seed_job_spec.yaml"), &cloud, false);
    assert!(r.secret_name.is_none());
    let env = env_map(&r.job);
    let value = |n: &str| env[n]["value"].as_str().unwrap().to_string();
    assert_eq!(
        value("PREFECT__CLOUD__GRAPHQL"),
        "http://prefect.example:4200/graphql"
    );
    assert_eq!(value("PREFECT__CLOUD__AUTH_TOKEN"), "");
    assert_eq!(value("PREFECT__CLOUD__USE_LOCAL_SECRETS"), "false");
    assert_eq!(
        value("PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"),
        "prefect.engine.cloud.CloudFlowRunner"
    );
    assert_eq!(
        value("PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS"),
        "prefect.engine.cloud.CloudTaskRunner"
    );
    assert_eq!(value("PREFECT__LOGGING__LOG_TO_CLOUD"), "true");
    assert_eq!(value("PREFECT__CLOUD__SEND_FLOW_RUN_LOGS"), "true");
    assert_eq!(value("PREFECT__BACKEND"), "server");
    assert_eq!(value("PREFECT__CLOUD__API"), "http://prefect.example:4200");
    assert_eq!(value("PREFECT__LOGGING__EXTRA_LOGGERS"), "['dask']");
    let names = env_names(&r.job, 0);
    assert_eq!(&names[1..11], &ENV_NAMES);
    assert_eq!(&names[11..], &EXTRA_ENV_NAMES);
}

#[test]
fn server_mode_without_addresses_uses_prefects_default_endpoint() {
    let cloud = CloudSettings {
        backend: "server".into(),
        auth_token: SecretString::new("tok-SECRET"),
        ..CloudSettings::default()
    };
    let r = render_with(&fixture("minimal.yaml"), &cloud, false);
    assert!(r.secret_name.is_none(), "a Server takes no token");
    assert!(!r.job.to_string().contains("tok-SECRET"));
    let env = env_map(&r.job);
    assert_eq!(
        env["PREFECT__CLOUD__GRAPHQL"]["value"],
        "http://localhost:4200/graphql"
    );
    assert_eq!(env["PREFECT__CLOUD__API"]["value"], "http://localhost:4200");
}

#[test]
fn mode_follows_backend_token_and_the_explicit_request() {
    use crate::context::Mode;
    let token = SecretString::new("t");
    let cases = [
        ("", None, false, Mode::BackendLess),
        ("cloud", None, false, Mode::BackendLess),
        ("cloud", token.clone(), false, Mode::Cloud),
        ("", token.clone(), false, Mode::Cloud),
        ("server", None, false, Mode::Server),
        ("Server", token.clone(), false, Mode::Server),
        ("server", None, true, Mode::BackendLess),
        ("cloud", token.clone(), true, Mode::BackendLess),
    ];
    for (backend, auth_token, backend_less, want) in cases {
        let s = CloudSettings {
            backend: backend.into(),
            auth_token,
            backend_less,
            ..CloudSettings::default()
        };
        assert_eq!(
            s.mode(),
            want,
            "backend={backend:?} backend_less={backend_less}"
        );
    }
}

#[test]
fn backend_less_request_drops_the_token_and_the_secret() {
    let cloud = CloudSettings {
        auth_token: SecretString::new("tok-SECRET"),
        backend_less: true,
        ..CloudSettings::default()
    };
    let r = render_with(&fixture("seed_job_spec.yaml"), &cloud, false);
    assert!(r.secret_name.is_none());
    let env = env_map(&r.job);
    assert_eq!(env["PREFECT__CLOUD__AUTH_TOKEN"]["value"], "");
    assert_eq!(env["PREFECT__CLOUD__USE_LOCAL_SECRETS"]["value"], "true");
}

#[test]
fn a_storage_description_travels_after_the_other_variables() {
    let v = values();
    let r = render(
        &fixture("seed_job_spec.yaml"),
        &RenderOptions {
            identifier: "i",
            values: &v,
            cloud: &CloudSettings::default(),
            unique_job_name: false,
            storage: Some(r#"{"flow_name":"f","storage":{"type":"Module"}}"#),
        },
    );
    let names = env_names(&r.job, 0);
    assert_eq!(names.last().map(String::as_str), Some(STORAGE_ENV));
    assert_eq!(
        env_map(&r.job)[STORAGE_ENV]["value"],
        r#"{"flow_name":"f","storage":{"type":"Module"}}"#
    );
}
