//! Reading what Prefect knows (flow storage, `prefect.context`, `prefect.config.cloud`) without
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
pub(crate) fn flow_values(flow: Option<&Bound<'_, PyAny>>) -> PyResult<FlowValues> {
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

/// Cloud settings: `prefect.config.cloud` when Prefect is loaded, else the environment.
pub(crate) fn cloud_settings(py: Python<'_>) -> PyResult<CloudSettings> {
    let from_env = |k: &str| std::env::var(k).ok().unwrap_or_default();
    if let Some(prefect) = loaded_prefect(py)? {
        if let Ok(cloud) = prefect.getattr("config").and_then(|c| c.getattr("cloud")) {
            // prefect.config is a Box (a dict): item lookups avoid its costly AttributeErrors.
            let item = |key: &str| -> Option<String> {
                match cloud.cast::<PyDict>() {
                    Ok(d) => d
                        .get_item(key)
                        .ok()
                        .flatten()
                        .and_then(|v| v.extract().ok()),
                    Err(_) => string_attr(&cloud, key),
                }
            };
            let graphql = item("graphql").unwrap_or_default();
            let token = item("auth_token").unwrap_or_default();
            return Ok(CloudSettings {
                graphql,
                auth_token: SecretString::new(token),
            });
        }
    }
    Ok(CloudSettings {
        graphql: from_env("PREFECT__CLOUD__GRAPHQL"),
        auth_token: SecretString::new(from_env("PREFECT__CLOUD__AUTH_TOKEN")),
    })
}
