//! Reading what Prefect knows (flow storage, `prefect.context`, `prefect.config`) without
//! importing Prefect: if the user's program has not imported it, it holds nothing for us.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::context::CloudSettings;
use crate::secret::SecretString;

/// Values a flow's storage gives.
#[derive(Default)]
pub(crate) struct FlowValues {
    pub image: Option<String>,
    pub flow_file_path: Option<String>,
    /// The storage described for the pod, when the flow is not a file in the image.
    pub storage: Option<String>,
}

/// Values `prefect.context` gives.
#[derive(Default)]
pub(crate) struct ContextValues {
    pub flow_run_id: Option<String>,
    pub namespace: Option<String>,
}

fn string_attr(obj: &Bound<'_, PyAny>, name: &str) -> Option<String> {
    obj.getattr(name)
        .ok()
        .filter(|v| !v.is_none())
        .and_then(|v| v.extract::<String>().ok())
}

static SYS_MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The loaded `prefect` module, only if the program already imported it.
fn loaded_prefect(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let modules = SYS_MODULES.get_or_try_init(py, || -> PyResult<Py<PyDict>> {
        Ok(py
            .import("sys")?
            .getattr("modules")?
            .cast_into::<PyDict>()?
            .unbind())
    })?;
    modules.bind(py).get_item("prefect")
}

/// Image and flow path from the flow's storage: Docker storage's `.name`, and `.flows[flow.name]`.
fn flow_values(flow: Option<&Bound<'_, PyAny>>) -> PyResult<FlowValues> {
    let Some(flow) = flow.filter(|f| !f.is_none()) else {
        return Ok(FlowValues::default());
    };
    let Ok(storage) = flow.getattr("storage") else {
        return Ok(FlowValues::default());
    };
    if storage.is_none() {
        return Ok(FlowValues::default());
    }
    storage_values(&storage, string_attr(flow, "name").as_deref())
}

/// Values from the `flow` argument of `render`/`execute`: a flow (its storage), or, as
/// Prefect <= 0.10 called `execute(storage, flow_location)`, a storage with the flow's path.
pub(crate) fn flow_argument(
    flow: Option<&Bound<'_, PyAny>>,
    flow_location: Option<String>,
) -> PyResult<FlowValues> {
    match flow {
        Some(storage) if is_seed_era_storage(flow) => {
            let mut values = storage_values(storage, None)?;
            if flow_location.is_some() {
                values.flow_file_path = flow_location;
            }
            Ok(values)
        }
        _ => flow_values(flow),
    }
}

/// Whether `flow` is the storage of a Prefect <= 0.10 `execute(storage, flow_location)` call
/// (then `flow_location` is the flow's path in that storage, not an override).
pub(crate) fn is_seed_era_storage(flow: Option<&Bound<'_, PyAny>>) -> bool {
    flow.is_some_and(|f| {
        f.hasattr("add_flow").unwrap_or(false) && !f.hasattr("tasks").unwrap_or(false)
    })
}

/// Image and flow path from a storage object (Prefect <= 0.10 `execute(storage, flow_location)` too).
pub(crate) fn storage_values(
    storage: &Bound<'_, PyAny>,
    flow_name: Option<&str>,
) -> PyResult<FlowValues> {
    let mut out = FlowValues::default();
    // Docker storage has image_name; its `.name` is registry_url/image_name:image_tag.
    if storage.hasattr("image_name")? {
        out.image = string_attr(storage, "name");
    }
    if loaded_prefect(storage.py())?.is_some() {
        out.storage = storage
            .py()
            .import("kjenv._storage")?
            .call_method1("describe", (storage, flow_name))?
            .extract()?;
    }
    // `flows` maps a name to a path in the image only for the storages that keep a file there.
    if out.storage.is_some() {
        return Ok(out);
    }
    if let (Some(name), Ok(flows)) = (flow_name, storage.getattr("flows")) {
        if let Ok(flows) = flows.cast::<PyDict>() {
            out.flow_file_path = flows
                .get_item(name)?
                .and_then(|p| p.extract::<String>().ok());
        }
    }
    Ok(out)
}

/// `flow_run_id` and `namespace` from `prefect.context`, if Prefect is loaded.
pub(crate) fn context_values(py: Python<'_>) -> PyResult<ContextValues> {
    let Some(prefect) = loaded_prefect(py)? else {
        return Ok(ContextValues::default());
    };
    let Ok(context) = prefect.getattr("context") else {
        return Ok(ContextValues::default());
    };
    let get = |key: &str| -> Option<String> {
        context
            .call_method1("get", (key,))
            .ok()
            .filter(|v| !v.is_none())
            .and_then(|v| v.extract().ok())
    };
    Ok(ContextValues {
        flow_run_id: get("flow_run_id"),
        namespace: get("namespace"),
    })
}

/// A value of a `prefect.config` section: item lookups (the section is a Box, a dict) avoid
/// its costly AttributeErrors; `str()` of anything that is not a string (extra_loggers is a list).
fn config_item(section: &Bound<'_, PyAny>, key: &str) -> Option<String> {
    let value = match section.cast::<PyDict>() {
        Ok(d) => d.get_item(key).ok().flatten(),
        Err(_) => section.getattr(key).ok(),
    }?;
    if value.is_none() {
        return None;
    }
    value
        .extract::<String>()
        .ok()
        .or_else(|| value.str().ok().map(|s| s.to_string()))
}

/// Whether the user asked for a backend-less run: `KJENV_BACKEND=none`.
fn backend_less_requested() -> bool {
    std::env::var("KJENV_BACKEND").is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"))
}

/// Backend settings: `prefect.config` when Prefect is loaded, else the `PREFECT__…` variables;
/// the core decides the mode from them ([`CloudSettings::mode`]).
pub(crate) fn cloud_settings(py: Python<'_>) -> PyResult<CloudSettings> {
    let from_env = |k: &str| std::env::var(k).ok().unwrap_or_default();
    let backend_less = backend_less_requested();
    if let Some(prefect) = loaded_prefect(py)? {
        if let Ok(config) = prefect.getattr("config") {
            if let Ok(cloud) = config.get_item("cloud") {
                let logging = config.get_item("logging").ok();
                let get = |key: &str| config_item(&cloud, key).unwrap_or_default();
                return Ok(CloudSettings {
                    graphql: get("graphql"),
                    api: get("api"),
                    auth_token: SecretString::new(get("auth_token")),
                    backend: config_item(&config, "backend").unwrap_or_default(),
                    extra_loggers: logging
                        .and_then(|l| config_item(&l, "extra_loggers"))
                        .unwrap_or_default(),
                    backend_less,
                });
            }
        }
    }
    let api = match from_env("PREFECT__CLOUD__API") {
        api if api.is_empty() => from_env("PREFECT__SERVER__ENDPOINT"),
        api => api,
    };
    Ok(CloudSettings {
        graphql: from_env("PREFECT__CLOUD__GRAPHQL"),
        api,
        auth_token: SecretString::new(from_env("PREFECT__CLOUD__AUTH_TOKEN")),
        backend: from_env("PREFECT__BACKEND"),
        extra_loggers: from_env("PREFECT__LOGGING__EXTRA_LOGGERS"),
        backend_less,
    })
}
