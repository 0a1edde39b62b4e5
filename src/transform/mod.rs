//! The seed's job transformation: rewrite a user's Job spec into the Job kjenv submits.
//! Pure: no I/O, no environment, no clock; randomness only for the names of [`crate::naming`].

use serde_json::{json, Map, Value};

use crate::context::{CloudSettings, Mode, Resolved};
use crate::naming::{self, FLOW_RUN_LABEL, IDENTIFIER_LABEL, JOB_API_VERSION, JOB_KIND};

pub mod unfixable;

/// The in-container entry point, run by `/bin/sh -c`.
pub const FLOW_COMMAND: &str = r#"python -c "from kjenv import KubernetesJobEnvironment; KubernetesJobEnvironment().run_flow()""#;

/// The env vars kjenv sets on the first container, in this order.
pub const ENV_NAMES: [&str; 10] = [
    "PREFECT__CLOUD__GRAPHQL",
    "PREFECT__CLOUD__AUTH_TOKEN",
    "PREFECT__CONTEXT__FLOW_RUN_ID",
    "PREFECT__CONTEXT__NAMESPACE",
    "PREFECT__CONTEXT__IMAGE",
    "PREFECT__CONTEXT__FLOW_FILE_PATH",
    "PREFECT__CLOUD__USE_LOCAL_SECRETS",
    "PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS",
    "PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS",
    "PREFECT__LOGGING__LOG_TO_CLOUD",
];

/// Further variables kjenv sets after [`ENV_NAMES`], depending on the mode (see `env_entries`):
/// Prefect 0.15's own names for sending logs and extra loggers, and a Server's address.
pub const EXTRA_ENV_NAMES: [&str; 4] = [
    "PREFECT__CLOUD__SEND_FLOW_RUN_LOGS",
    "PREFECT__BACKEND",
    "PREFECT__CLOUD__API",
    "PREFECT__LOGGING__EXTRA_LOGGERS",
];

/// The variable that carries the flow's storage description to the pod (names of secrets, never
/// their values: the pod resolves them).
pub const STORAGE_ENV: &str = "KJENV_FLOW_STORAGE";

/// The key of the auth token inside the run's Secret.
pub const SECRET_TOKEN_KEY: &str = "auth-token";

/// What a render needs besides the spec.
#[derive(Debug, Clone)]
pub struct RenderOptions<'a> {
    pub identifier: &'a str,
    pub values: &'a Resolved,
    pub cloud: &'a CloudSettings,
    pub unique_job_name: bool,
    /// A description of the flow's storage for `run_flow()` to load the flow from
    /// ([`STORAGE_ENV`]); `None` when the flow is a file in the image (Docker, Local storage).
    pub storage: Option<&'a str>,
}

/// The rendered Job and what the caller must know about it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The Job to submit, named (see [`crate::naming::generated_name`]).
    pub job: Value,
    /// Its `metadata.name`.
    pub name: String,
    /// User fields that were non-empty and got replaced (for one warning).
    pub replaced: Vec<String>,
    /// The Secret that must hold the auth token (Cloud mode only).
    pub secret_name: Option<String>,
}

/// The object at `key`, created (or replacing a non-object) if needed.
fn object<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn is_nonempty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

fn set_labels(meta: &mut Map<String, Value>, identifier: &str, flow_run_id: &str) {
    let labels = object(meta, "labels");
    labels.insert(IDENTIFIER_LABEL.into(), Value::String(identifier.into()));
    labels.insert(FLOW_RUN_LABEL.into(), Value::String(flow_run_id.into()));
}

/// The name the Job will have, settled now: `execute()` posts exactly what `render()` shows.
fn settle_name(meta: &mut Map<String, Value>, unique: bool) -> String {
    let text = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let name = match (text("name"), text("generateName")) {
        (Some(n), _) if unique => naming::unique_name(&n),
        (Some(n), _) => n,
        (None, Some(prefix)) => naming::generated_name(&prefix),
        (None, None) => naming::default_job_name(),
    };
    meta.remove("generateName");
    meta.insert("name".into(), Value::String(name.clone()));
    name
}

/// Runner classes, `USE_LOCAL_SECRETS` and `LOG_TO_CLOUD` for a mode.
fn mode_values(mode: Mode) -> (&'static str, &'static str, &'static str, &'static str) {
    match mode {
        Mode::Cloud | Mode::Server => (
            "prefect.engine.cloud.CloudFlowRunner",
            "prefect.engine.cloud.CloudTaskRunner",
            "false",
            "true",
        ),
        Mode::BackendLess => (
            "prefect.engine.flow_runner.FlowRunner",
            "prefect.engine.task_runner.TaskRunner",
            "true",
            "false",
        ),
    }
}

fn env_entries(opts: &RenderOptions, secret: Option<&str>) -> Vec<Value> {
    let v = opts.values;
    let cloud = opts.cloud;
    let mode = cloud.mode();
    let (flow_runner, task_runner, local_secrets, log_to_cloud) = mode_values(mode);
    let graphql = match mode {
        Mode::Cloud => cloud.graphql.clone(),
        Mode::Server => cloud.server_graphql(),
        Mode::BackendLess => String::new(),
    };
    let plain = |name: &str, value: &str| json!({"name": name, "value": value});
    let token = match secret {
        Some(secret) => json!({
            "name": "PREFECT__CLOUD__AUTH_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": SECRET_TOKEN_KEY}}
        }),
        None => plain("PREFECT__CLOUD__AUTH_TOKEN", ""),
    };
    let mut env = vec![
        plain("PREFECT__CLOUD__GRAPHQL", &graphql),
        token,
        plain("PREFECT__CONTEXT__FLOW_RUN_ID", &v.flow_run_id),
        plain("PREFECT__CONTEXT__NAMESPACE", &v.namespace),
        plain("PREFECT__CONTEXT__IMAGE", &v.image),
        plain("PREFECT__CONTEXT__FLOW_FILE_PATH", &v.flow_file_path),
        plain("PREFECT__CLOUD__USE_LOCAL_SECRETS", local_secrets),
        plain("PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS", flow_runner),
        plain("PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS", task_runner),
        plain("PREFECT__LOGGING__LOG_TO_CLOUD", log_to_cloud),
    ];
    if mode != Mode::BackendLess {
        // Prefect 0.15 reads `cloud.send_flow_run_logs`; `logging.log_to_cloud` is deprecated.
        env.push(plain("PREFECT__CLOUD__SEND_FLOW_RUN_LOGS", "true"));
    }
    if mode == Mode::Server {
        // Prefect's client sends its requests to `cloud.api`, which follows the backend.
        env.push(plain("PREFECT__BACKEND", "server"));
        env.push(plain("PREFECT__CLOUD__API", &cloud.server_api()));
    }
    let extra = if cloud.extra_loggers.is_empty() {
        "[]"
    } else {
        cloud.extra_loggers.as_str()
    };
    env.push(plain("PREFECT__LOGGING__EXTRA_LOGGERS", extra));
    if let Some(storage) = opts.storage {
        env.push(plain(STORAGE_ENV, storage));
    }
    env
}

/// Rewrite the first container; report user values that were replaced.
fn rewrite_flow_container(
    container: &mut Map<String, Value>,
    image: &str,
    env: Vec<Value>,
    replaced: &mut Vec<String>,
) {
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("flow")
        .to_string();
    let command = json!(["/bin/sh", "-c"]);
    let args = json!([FLOW_COMMAND]);
    for (field, new) in [
        ("image", Value::String(image.into())),
        ("command", command),
        ("args", args),
    ] {
        let old = container.get(field);
        if is_nonempty(old) && old != Some(&new) {
            replaced.push(format!("containers[{name}].{field}"));
        }
        container.insert(field.into(), new);
    }
    let slot = container.entry("env").or_insert_with(|| json!([]));
    let user_env = match std::mem::take(slot) {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    // The names kjenv sets replace the user's entries of the same name (no duplicates).
    let ours: Vec<&str> = env
        .iter()
        .filter_map(|e| e.get("name").and_then(Value::as_str))
        .collect();
    let mut kept: Vec<Value> = Vec::with_capacity(user_env.len() + env.len());
    for entry in user_env {
        let var_name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if ours.contains(&var_name) {
            if is_nonempty(entry.get("value")) || entry.get("valueFrom").is_some() {
                replaced.push(format!("containers[{name}].env[{var_name}]"));
            }
        } else {
            kept.push(entry);
        }
    }
    kept.extend(env);
    // Replaced in place: the user's key order is kept.
    *slot = Value::Array(kept);
}

/// Render the Job kjenv submits for `spec` (a checked Job spec, see [`crate::spec`]).
pub fn render(spec: &Value, opts: &RenderOptions) -> Rendered {
    let mut job = match spec {
        Value::Object(_) => spec.clone(),
        _ => json!({}),
    };
    let root = job.as_object_mut().expect("made an object above");
    root.entry("apiVersion")
        .or_insert_with(|| json!(JOB_API_VERSION));
    root.entry("kind").or_insert_with(|| json!(JOB_KIND));
    let values = opts.values;
    // Only Cloud mode has a token, hence a Secret named after the Job.
    let cloud = opts.cloud.mode() == Mode::Cloud;
    let mut replaced = Vec::new();

    let meta = object(root, "metadata");
    let job_name = settle_name(meta, opts.unique_job_name);
    meta.insert("namespace".into(), Value::String(values.namespace.clone()));
    set_labels(meta, opts.identifier, &values.flow_run_id);

    let secret = cloud.then(|| naming::secret_name(&job_name));

    let template = object(object(root, "spec"), "template");
    set_labels(
        object(template, "metadata"),
        opts.identifier,
        &values.flow_run_id,
    );
    let pod = object(template, "spec");
    let policy = pod
        .get("restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if policy.is_empty() {
        pod.insert("restartPolicy".into(), json!("Never"));
    }
    let containers = pod.entry("containers").or_insert_with(|| json!([]));
    if !containers.is_array() {
        *containers = json!([]);
    }
    let list = containers.as_array_mut().expect("made an array above");
    if list.is_empty() {
        list.push(json!({"name": "flow"}));
    }
    if !list[0].is_object() {
        list[0] = json!({"name": "flow"});
    }
    let first = list[0].as_object_mut().expect("made an object above");
    if first
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        first.insert("name".into(), json!("flow"));
    }
    rewrite_flow_container(
        first,
        &values.image,
        env_entries(opts, secret.as_deref()),
        &mut replaced,
    );
    unfixable::fail_job_on_unfixable_exit(&mut job);

    Rendered {
        job,
        name: job_name,
        replaced,
        secret_name: secret,
    }
}

#[cfg(test)]
mod tests;
