//! What the flow container knows about its run: the context the transformation put in its
//! environment (see [`crate::transform::ENV_NAMES`]).

use crate::context::DEFAULT_FLOW_FILE_PATH;

/// The run's context, read from the container's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowContext {
    pub flow_file_path: String,
    pub flow_run_id: Option<String>,
    pub namespace: Option<String>,
    pub image: Option<String>,
    pub flow_runner: String,
    pub task_runner: String,
    /// The flow's storage description ([`crate::transform::STORAGE_ENV`]), when the flow is
    /// not a file in the image.
    pub storage: Option<String>,
    /// Cloud mode: an auth token is present (its value is never read here).
    pub cloud: bool,
    /// The GraphQL endpoint of the backend the run reports to (Cloud or Server); `None`
    /// backend-less, where the transformation writes an empty `PREFECT__CLOUD__GRAPHQL`.
    pub backend: Option<String>,
}

impl FlowContext {
    /// Read the context; `env` looks a variable up.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> FlowContext {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        FlowContext {
            flow_file_path: get("PREFECT__CONTEXT__FLOW_FILE_PATH")
                .unwrap_or_else(|| DEFAULT_FLOW_FILE_PATH.into()),
            flow_run_id: get("PREFECT__CONTEXT__FLOW_RUN_ID"),
            namespace: get("PREFECT__CONTEXT__NAMESPACE"),
            image: get("PREFECT__CONTEXT__IMAGE"),
            flow_runner: get("PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS")
                .unwrap_or_else(|| "prefect.engine.flow_runner.FlowRunner".into()),
            task_runner: get("PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS")
                .unwrap_or_else(|| "prefect.engine.task_runner.TaskRunner".into()),
            storage: get(crate::transform::STORAGE_ENV),
            cloud: get("PREFECT__CLOUD__AUTH_TOKEN").is_some(),
            backend: get("PREFECT__CLOUD__GRAPHQL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_injected_variables_with_defaults() {
        let env = |k: &str| match k {
            "PREFECT__CONTEXT__FLOW_FILE_PATH" => Some("/flows/f.prefect".to_string()),
            "PREFECT__CONTEXT__FLOW_RUN_ID" => Some("run-9".to_string()),
            "PREFECT__CONTEXT__NAMESPACE" => Some(String::new()),
            _ => None,
        };
        let ctx = FlowContext::from_env(&env);
        assert_eq!(ctx.flow_file_path, "/flows/f.prefect");
        assert_eq!(ctx.flow_run_id.as_deref(), Some("run-9"));
        assert_eq!(ctx.namespace, None);
        assert_eq!(ctx.flow_runner, "prefect.engine.flow_runner.FlowRunner");
        assert!(!ctx.cloud);
        assert_eq!(ctx.backend, None, "backend-less");
        let server = |k: &str| {
            (k == "PREFECT__CLOUD__GRAPHQL").then(|| "http://127.0.0.1:4200/graphql".to_string())
        };
        let ctx = FlowContext::from_env(&server);
        assert_eq!(
            ctx.backend.as_deref(),
            Some("http://127.0.0.1:4200/graphql")
        );
        let bare = FlowContext::from_env(&|_| None);
        assert_eq!(bare.flow_file_path, DEFAULT_FLOW_FILE_PATH);
    }
}
