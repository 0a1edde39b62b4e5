//! Where each value of a rendered Job comes from, in the order architecture.md §2.7 gives.

use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::spec::names;

/// Prefect's default location of the flow file inside the image.
pub const DEFAULT_FLOW_FILE_PATH: &str = "/root/.prefect/flow_env.prefect";

/// Prefect's server endpoint when nothing configures one (its `config.toml`).
pub const DEFAULT_SERVER_ENDPOINT: &str = "http://localhost:4200";

/// What Prefect's configuration says about the backend, as the bindings read it
/// (`prefect.config` when Prefect is loaded, else the `PREFECT__…` variables).
#[derive(Debug, Clone, Default)]
pub struct CloudSettings {
    /// `prefect.config.cloud.graphql`.
    pub graphql: String,
    /// `prefect.config.cloud.api`: the address Prefect's client sends its requests to.
    pub api: String,
    pub auth_token: Option<SecretString>,
    /// `prefect.config.backend`: `cloud` (Prefect's default, also when empty) or `server`.
    pub backend: String,
    /// `str(prefect.config.logging.extra_loggers)`; empty means Prefect's default `[]`.
    pub extra_loggers: String,
    /// The user asked for a backend-less run (`KJENV_BACKEND=none`).
    pub backend_less: bool,
}

/// Where the flow run reports: the backend that scheduled it, or nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Prefect Cloud: Cloud runners, the token in a Secret.
    Cloud,
    /// A self-hosted Prefect Server: Cloud runners, no token.
    Server,
    /// No backend: local runners, local secrets.
    BackendLess,
}

impl CloudSettings {
    /// The mode these settings call for: an explicit request for no backend wins, then a
    /// `server` backend, then a token (Cloud); no token on the Cloud backend is backend-less.
    pub fn mode(&self) -> Mode {
        if self.backend_less {
            Mode::BackendLess
        } else if self.backend.eq_ignore_ascii_case("server") {
            Mode::Server
        } else if self.auth_token.is_some() {
            Mode::Cloud
        } else {
            Mode::BackendLess
        }
    }

    /// The API address for Server mode: the configured one, else the default endpoint.
    pub fn server_api(&self) -> String {
        if self.api.is_empty() {
            DEFAULT_SERVER_ENDPOINT.to_string()
        } else {
            self.api.clone()
        }
    }

    /// The GraphQL address for Server mode: the configured one, else derived from the API
    /// address as Prefect's `config.toml` does (`${cloud.api}/graphql`).
    pub fn server_graphql(&self) -> String {
        if self.graphql.is_empty() {
            format!("{}/graphql", self.server_api())
        } else {
            self.graphql.clone()
        }
    }
}

/// Candidates for each value, highest priority first within each field; `None`/empty = absent.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub image: Option<String>,
    pub metadata_image: Option<String>,
    pub storage_image: Option<String>,
    pub flow_run_id: Option<String>,
    pub context_flow_run_id: Option<String>,
    pub namespace: Option<String>,
    pub spec_namespace: Option<String>,
    pub context_namespace: Option<String>,
    pub config_namespace: Option<String>,
    pub flow_file_path: Option<String>,
    pub storage_flow_file_path: Option<String>,
}

/// The values a Job is rendered with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub image: String,
    pub flow_run_id: String,
    pub namespace: String,
    pub flow_file_path: String,
}

/// The first non-empty candidate and the name of where it came from.
fn first_from<const N: usize>(
    options: [(Option<String>, &'static str); N],
) -> Option<(String, &'static str)> {
    options
        .into_iter()
        .find_map(|(v, from)| v.filter(|s| !s.is_empty()).map(|v| (v, from)))
}

/// Check a resolved value with `rule`, then with [`text_rule`] (every string argument follows
/// it); the error names the value and where it came from.
fn check(
    field: &str,
    from: &str,
    rule: impl Fn(&str) -> Result<(), String>,
    value: &str,
) -> Result<()> {
    rule(value)
        .and_then(|()| text_rule(value))
        .map_err(|expected| Error::InvalidArgument(format!("{field}: {expected} (from {from})")))
}

/// The one rule every string argument follows: no control characters (a NUL, a newline or an
/// escape would end up in a pod's command line, a header or a terminal).
///
/// # Errors
/// What was expected, for a message.
pub fn text_rule(value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!(
            "expected text without control characters, got {}",
            names::quote(value)
        ));
    }
    Ok(())
}

/// [`text_rule`] for an argument given directly (a kubeconfig path, a context name).
///
/// # Errors
/// [`Error::InvalidArgument`] naming the argument.
pub fn check_text(field: &str, value: &str) -> Result<()> {
    text_rule(value).map_err(|expected| Error::InvalidArgument(format!("{field}: {expected}")))
}

/// An image reference the API server takes: no whitespace or control characters.
fn image_rule(image: &str) -> Result<(), String> {
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "expected an image reference without spaces or control characters, got {}",
            names::quote(image)
        ));
    }
    Ok(())
}

/// Resolve every value from its candidates and the environment (`env` looks a variable up).
///
/// # Errors
/// [`Error::MissingValue`] when no image can be found anywhere; [`Error::InvalidArgument`] when
/// the image, the flow run id (a label value) or the namespace is not valid, naming its source.
pub fn resolve(c: &Candidates, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
    let (image, image_from) = first_from([
        (c.image.clone(), "the image argument"),
        (c.metadata_image.clone(), "metadata[\"image\"]"),
        (c.storage_image.clone(), "the flow's storage"),
        (env("PREFECT__CONTEXT__IMAGE"), "PREFECT__CONTEXT__IMAGE"),
    ])
    .ok_or_else(|| {
        Error::MissingValue(
            "no image for the flow container: pass image=..., set metadata={\"image\": ...} on the \
             environment, use Docker storage, or set PREFECT__CONTEXT__IMAGE"
                .into(),
        )
    })?;
    check("image", image_from, image_rule, &image)?;
    let flow_run_id = match first_from([
        (c.flow_run_id.clone(), "the flow_run_id argument"),
        (c.context_flow_run_id.clone(), "prefect.context"),
        (
            env("PREFECT__CONTEXT__FLOW_RUN_ID"),
            "PREFECT__CONTEXT__FLOW_RUN_ID",
        ),
    ]) {
        // It becomes the value of the `flow_run_id` label.
        Some((id, from)) => {
            check("flow_run_id", from, names::label_value, &id)?;
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let namespace = match first_from([
        (c.namespace.clone(), "the namespace argument"),
        (
            c.spec_namespace.clone(),
            "the job spec's metadata.namespace",
        ),
        (c.context_namespace.clone(), "prefect.context"),
        (c.config_namespace.clone(), "the kubeconfig's context"),
    ]) {
        Some((ns, from)) => {
            check("namespace", from, names::dns_label, &ns)?;
            ns
        }
        None => "default".into(),
    };
    let flow_file_path = match first_from([
        (c.flow_file_path.clone(), "the flow_file_path argument"),
        (c.storage_flow_file_path.clone(), "the flow's storage"),
        (
            env("PREFECT__CONTEXT__FLOW_FILE_PATH"),
            "PREFECT__CONTEXT__FLOW_FILE_PATH",
        ),
    ]) {
        Some((path, from)) => {
            check("flow_file_path", from, |_| Ok(()), &path)?;
            path
        }
        None => DEFAULT_FLOW_FILE_PATH.into(),
    };
    Ok(Resolved {
        image,
        flow_run_id,
        namespace,
        flow_file_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn image_order_is_argument_metadata_storage_env() {
        let env = |k: &str| (k == "PREFECT__CONTEXT__IMAGE").then(|| "env/img".to_string());
        let mut c = Candidates {
            image: Some("arg/img".into()),
            metadata_image: Some("meta/img".into()),
            storage_image: Some("reg/flows:tag".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&c, &env).unwrap().image, "arg/img");
        c.image = None;
        assert_eq!(resolve(&c, &env).unwrap().image, "meta/img");
        c.metadata_image = Some(String::new());
        assert_eq!(resolve(&c, &env).unwrap().image, "reg/flows:tag");
        c.storage_image = None;
        assert_eq!(resolve(&c, &env).unwrap().image, "env/img");
        let err = resolve(&c, &no_env).unwrap_err();
        assert!(
            err.to_string().contains("no image for the flow container"),
            "{err}"
        );
    }

    #[test]
    fn flow_run_id_falls_back_to_a_new_uuid() {
        let c = Candidates {
            image: Some("i".into()),
            ..Default::default()
        };
        let id = resolve(&c, &no_env).unwrap().flow_run_id;
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        let env = |k: &str| (k == "PREFECT__CONTEXT__FLOW_RUN_ID").then(|| "from-env".to_string());
        assert_eq!(resolve(&c, &env).unwrap().flow_run_id, "from-env");
        let c2 = Candidates {
            context_flow_run_id: Some("ctx".into()),
            ..c
        };
        assert_eq!(resolve(&c2, &env).unwrap().flow_run_id, "ctx");
    }

    #[test]
    fn invalid_values_name_their_source() {
        let c = Candidates {
            image: Some("i".into()),
            namespace: Some("Bad NS".into()),
            ..Default::default()
        };
        let err = resolve(&c, &no_env).unwrap_err().to_string();
        assert!(
            err.starts_with("namespace: expected a DNS-1123 label"),
            "{err}"
        );
        assert!(
            err.ends_with("got \"Bad NS\" (from the namespace argument)"),
            "{err}"
        );
        let env = |k: &str| (k == "PREFECT__CONTEXT__FLOW_RUN_ID").then(|| "a b".to_string());
        let c = Candidates {
            image: Some("i".into()),
            ..Default::default()
        };
        let err = resolve(&c, &env).unwrap_err().to_string();
        assert!(
            err.starts_with("flow_run_id: expected a label value"),
            "{err}"
        );
        assert!(
            err.ends_with("(from PREFECT__CONTEXT__FLOW_RUN_ID)"),
            "{err}"
        );
        let c = Candidates {
            metadata_image: Some(" img".into()),
            ..Default::default()
        };
        let err = resolve(&c, &no_env).unwrap_err().to_string();
        assert!(
            err.starts_with("image: expected an image reference"),
            "{err}"
        );
        assert!(err.ends_with("(from metadata[\"image\"])"), "{err}");
    }

    #[test]
    fn namespace_and_flow_path_orders() {
        let mut c = Candidates {
            image: Some("i".into()),
            spec_namespace: Some("spec-ns".into()),
            context_namespace: Some("ctx-ns".into()),
            config_namespace: Some("cfg-ns".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&c, &no_env).unwrap().namespace, "spec-ns");
        c.namespace = Some("arg-ns".into());
        assert_eq!(resolve(&c, &no_env).unwrap().namespace, "arg-ns");
        let bare = Candidates {
            image: Some("i".into()),
            ..Default::default()
        };
        let r = resolve(&bare, &no_env).unwrap();
        assert_eq!(r.namespace, "default");
        assert_eq!(r.flow_file_path, DEFAULT_FLOW_FILE_PATH);
        let env =
            |k: &str| (k == "PREFECT__CONTEXT__FLOW_FILE_PATH").then(|| "/env/flow".to_string());
        assert_eq!(resolve(&bare, &env).unwrap().flow_file_path, "/env/flow");
        let s = Candidates {
            storage_flow_file_path: Some("/storage/flow".into()),
            ..bare
        };
        assert_eq!(resolve(&s, &env).unwrap().flow_file_path, "/storage/flow");
    }

    #[test]
    fn every_string_refuses_control_characters() {
        let base = Candidates {
            image: Some("i".into()),
            ..Default::default()
        };
        let nul_path = Candidates {
            flow_file_path: Some("/flows/a\0b.py".into()),
            ..base.clone()
        };
        let err = resolve(&nul_path, &no_env).unwrap_err().to_string();
        assert_eq!(
            err,
            "flow_file_path: expected text without control characters, got \"/flows/a\\0b.py\" \
             (from the flow_file_path argument)"
        );
        let env = |k: &str| (k == "PREFECT__CONTEXT__FLOW_FILE_PATH").then(|| "/a\nb".to_string());
        let err = resolve(&base, &env).unwrap_err().to_string();
        assert!(
            err.ends_with("(from PREFECT__CONTEXT__FLOW_FILE_PATH)"),
            "{err}"
        );
        let storage = Candidates {
            storage_flow_file_path: Some("/a\u{1b}[2J".into()),
            ..base.clone()
        };
        assert!(resolve(&storage, &no_env).is_err());
        // A space is not a control character: a path may hold one.
        let spaced = Candidates {
            flow_file_path: Some("/my flows/f.py".into()),
            ..base
        };
        assert_eq!(
            resolve(&spaced, &no_env).unwrap().flow_file_path,
            "/my flows/f.py"
        );
        assert!(check_text("context", "dev\r\n").is_err());
        assert!(check_text("context", "dev").is_ok());
    }
}
