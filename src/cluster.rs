//! Cluster access: which configuration to use (explicit kubeconfig/context, then `KUBECONFIG` or
//! `~/.kube/config`, then the in-cluster service account) and one client per configuration.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};
use crate::header::header_safe;
use crate::spec::names;

/// The largest kubeconfig file kjenv reads; real ones, certificates included, are kilobytes.
pub const MAX_KUBECONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Which cluster to talk to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// An explicit kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig (or of the default one).
    pub context: Option<String>,
}

/// A connected client and the namespace its configuration defaults to.
#[derive(Clone)]
pub struct Connection {
    pub client: kube::Client,
    pub default_namespace: String,
}

/// When a configuration file was last written (size and modification time), if it exists.
type Stamp = Option<(u64, std::time::SystemTime)>;

/// The cache key: the target, what `KUBECONFIG` said and how the kubeconfig files looked when
/// the client was made (a rewritten kubeconfig — a restarted local cluster, another current
/// context — needs a new client), the process id (a forked child needs clients on its own
/// runtime), and the request time limit the client enforces.
type Key = (Target, Option<String>, Vec<Stamp>, u32, Duration);

/// The cache key of `target` now: what `KUBECONFIG` says, the files' stamps, this process.
fn cache_key(target: &Target, request_timeout: Duration) -> Key {
    let env = std::env::var("KUBECONFIG").ok();
    let stamps = stamps(target, env.as_deref());
    (
        target.clone(),
        env,
        stamps,
        std::process::id(),
        request_timeout,
    )
}

/// The kubeconfig files `target` reads, stamped.
fn stamps(target: &Target, env: Option<&str>) -> Vec<Stamp> {
    let files: Vec<PathBuf> = match (&target.kubeconfig, env.filter(|v| !v.is_empty())) {
        (Some(path), _) => vec![path.clone()],
        (None, Some(paths)) => std::env::split_paths(paths).collect(),
        (None, None) => home_kubeconfig().into_iter().collect(),
    };
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        })
        .collect()
}

thread_local! {
    /// Clients live with the runtime of the thread that made them (see [`crate::runtime`]):
    /// one cache per thread, gone with the thread.
    static CLIENTS: RefCell<HashMap<Key, Cached>> = RefCell::new(HashMap::new());
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube").join("config"))
}

fn config_error(message: String) -> Error {
    Error::ClusterConfig { message }
}

/// Decode a kubeconfig file: UTF-8, or UTF-8/UTF-16 with a byte order mark (as kube and kubectl).
fn decode(bytes: &[u8]) -> Option<String> {
    fn utf16(rest: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
        if !rest.len().is_multiple_of(2) {
            return None;
        }
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| unit([c[0], c[1]])).collect();
        String::from_utf16(&units).ok()
    }
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest).ok().map(str::to_owned),
        _ => std::str::from_utf8(bytes).ok().map(str::to_owned),
    }
}

/// Read a kubeconfig file: bounded in size, parsed without ever echoing its content (it holds
/// credentials), with relative file references made absolute as kubectl does.
///
/// # Errors
/// [`Error::ClusterConfig`] naming the file: unreadable, too large, not text, invalid.
pub fn read_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    let shown = names::shown_path(path);
    let bytes = crate::files::read_capped(path, MAX_KUBECONFIG_BYTES).map_err(|e| match e {
        crate::files::ReadError::TooLarge(_) => config_error(format!(
            "kubeconfig {shown} is too large (more than {MAX_KUBECONFIG_BYTES} bytes)"
        )),
        e => config_error(format!("cannot read kubeconfig {shown}: {e}")),
    })?;
    let text = decode(&bytes).ok_or_else(|| {
        config_error(format!(
            "kubeconfig {shown} is not text (expected UTF-8, or UTF-16 with a byte order mark)"
        ))
    })?;
    let mut config = parse_kubeconfig(&text, &shown.to_string())?;
    if let Some(dir) = path.parent() {
        let absolute = |file: &mut Option<String>| {
            if let Some(f) = file.as_deref().filter(|f| Path::new(f).is_relative()) {
                *file = dir.join(f).to_str().map(str::to_owned).or(file.take());
            }
        };
        for cluster in config
            .clusters
            .iter_mut()
            .filter_map(|c| c.cluster.as_mut())
        {
            absolute(&mut cluster.certificate_authority);
        }
        for user in config
            .auth_infos
            .iter_mut()
            .filter_map(|u| u.auth_info.as_mut())
        {
            absolute(&mut user.client_certificate);
            absolute(&mut user.client_key);
            absolute(&mut user.token_file);
            // Bare commands are looked up on PATH; only paths are made absolute (client-go).
            if let Some(exec) = user.exec.as_mut() {
                if exec
                    .command
                    .as_deref()
                    .is_some_and(|c| c.contains(std::path::MAIN_SEPARATOR))
                {
                    absolute(&mut exec.command);
                }
            }
        }
    }
    Ok(config)
}

/// Parse kubeconfig text; several YAML documents are merged (the first to set a value wins).
/// `origin` names the text in errors, which never quote it.
///
/// # Errors
/// [`Error::ClusterConfig`] with `origin:line:column` for YAML and shape errors.
pub fn parse_kubeconfig(text: &str, origin: &str) -> Result<Kubeconfig> {
    let mut options = crate::spec::yaml_options();
    if let Some(budget) = options.budget.as_mut() {
        budget.max_documents = 64;
    }
    let docs: Vec<Kubeconfig> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            let at = match e.location() {
                Some(l) if l.line() > 0 => format!("{origin}:{}:{}", l.line(), l.column()),
                _ => origin.to_string(),
            };
            config_error(format!(
                "{at}: invalid kubeconfig: {}",
                crate::spec::clean_parser_message(&e.to_string())
                    .trim_start_matches("invalid YAML: ")
            ))
        })?;
    docs.into_iter()
        .try_fold(Kubeconfig::default(), Kubeconfig::merge)
        .map_err(|e| config_error(format!("{origin}: {e}")))
}

/// Whether an exec credential plugin exists: a path, or a name found on `PATH`.
fn on_path(command: &str) -> bool {
    if command.contains(std::path::MAIN_SEPARATOR) {
        return Path::new(command).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(command).is_file()))
}

/// Up to ten names, for "there are: …" hints.
fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(names::quote).collect();
    match names.len() {
        0 => "there are none".to_string(),
        n if n > 10 => format!("there are {}, …", names[..10].join(", ")),
        _ => format!("there are {}", names.join(", ")),
    }
}

/// `origin: field: what`, as every kubeconfig error reads.
struct Where<'a> {
    origin: &'a str,
}

impl Where<'_> {
    fn fail(&self, field: impl std::fmt::Display, what: impl std::fmt::Display) -> Error {
        config_error(format!("{}: {field}: {what}", self.origin))
    }
}

/// The context to use: `context`, else the kubeconfig's current-context; its name and body.
fn pick_context(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
    at: &Where,
) -> Result<(String, kube::config::Context)> {
    let contexts = || listing(kubeconfig.contexts.iter().map(|c| c.name.as_str()));
    let name = context
        .or(kubeconfig.current_context.as_deref())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            let what = format!(
                "not set and no context was given; pass context=... ({})",
                contexts()
            );
            at.fail("current-context", what)
        })?;
    let field = if context.is_some() {
        "context"
    } else {
        "current-context"
    };
    let named = kubeconfig.contexts.iter().find(|c| c.name == name);
    let named = named.ok_or_else(|| {
        let what = format!(
            "no context named {} in the kubeconfig ({})",
            names::quote(name),
            contexts()
        );
        at.fail(field, what)
    })?;
    let body = named.context.clone();
    let body = body.ok_or_else(|| at.fail(context_field(name), "missing"))?;
    Ok((name.to_string(), body))
}

fn context_field(name: &str) -> String {
    format!("contexts[{}].context", names::quote(name))
}

fn cluster_field(name: &str) -> String {
    format!("clusters[{}].cluster", names::quote(name))
}

/// The context's cluster, which must name a server.
fn pick_cluster(
    kubeconfig: &Kubeconfig,
    context_name: &str,
    ctx: &kube::config::Context,
    at: &Where,
) -> Result<kube::config::Cluster> {
    let at_cluster = cluster_field(&ctx.cluster);
    let named = kubeconfig.clusters.iter().find(|c| c.name == ctx.cluster);
    let named = named.ok_or_else(|| {
        let known = listing(kubeconfig.clusters.iter().map(|c| c.name.as_str()));
        let what = format!(
            "no cluster named {} in the kubeconfig ({known})",
            names::quote(&ctx.cluster)
        );
        at.fail(format!("{}.cluster", context_field(context_name)), what)
    })?;
    let cluster = named
        .cluster
        .clone()
        .ok_or_else(|| at.fail(&at_cluster, "missing"))?;
    if cluster.server.as_deref().unwrap_or_default().is_empty() {
        let what = "missing: expected the API server's URL (https://host:port)";
        return Err(at.fail(format!("{at_cluster}.server"), what));
    }
    Ok(cluster)
}

/// The largest file a kubeconfig names that kjenv lets kube read (a token, a certificate).
pub const MAX_CREDENTIAL_FILE_BYTES: u64 = 1024 * 1024;

/// A file the kubeconfig names (kube reads it later): a regular file within the cap, so kube's
/// own read can neither block (a FIFO) nor run out of memory (`/dev/zero`). Its bytes.
fn check_file(file: &str, field: &str, at: &Where) -> Result<Vec<u8>> {
    crate::files::read_capped(Path::new(file), MAX_CREDENTIAL_FILE_BYTES)
        .map_err(|e| at.fail(field, format!("cannot read {}: {e}", names::quote(file))))
}

/// A value that becomes a header must be [`header_safe`]; the error names the field, never
/// the value (it may be a credential).
fn check_header(value: Option<&str>, field: &str, at: &Where) -> Result<()> {
    match value {
        Some(v) if !header_safe(v) => Err(at.fail(
            field,
            "holds a control or non-ASCII character (a line break?); it cannot be sent in an HTTP header",
        )),
        _ => Ok(()),
    }
}

/// The context's user: it must exist when named; the values that become headers must be sendable
/// and the files and commands it names must exist (a token file, certificates, an exec plugin).
fn check_user(
    kubeconfig: &Kubeconfig,
    name: &str,
    ctx: &kube::config::Context,
    at: &Where,
) -> Result<()> {
    let Some(user) = ctx.user.as_deref() else {
        let what =
            "missing: expected the name of an entry of users (kubectl config set-context --user)";
        return Err(at.fail(format!("{}.user", context_field(name)), what));
    };
    let Some(named) = kubeconfig.auth_infos.iter().find(|u| u.name == user) else {
        let known = listing(kubeconfig.auth_infos.iter().map(|u| u.name.as_str()));
        let what = format!(
            "no user named {} in the kubeconfig ({known})",
            names::quote(user)
        );
        return Err(at.fail(format!("{}.user", context_field(name)), what));
    };
    let at_user = format!("users[{}].user", names::quote(user));
    let Some(auth) = named.auth_info.as_ref() else {
        return Ok(());
    };
    check_auth_headers(auth, &at_user, at)?;
    for (file, key) in [
        (&auth.client_certificate, "client-certificate"),
        (&auth.client_key, "client-key"),
    ] {
        if let Some(file) = file.as_deref() {
            check_file(file, &format!("{at_user}.{key}"), at)?;
        }
    }
    if let Some(file) = auth.token_file.as_deref() {
        let field = format!("{at_user}.tokenFile");
        let bytes = check_file(file, &field, at)?;
        let token = String::from_utf8_lossy(&bytes);
        check_header(Some(token.trim()), &field, at)?;
    }
    let command = auth.exec.as_ref().and_then(|e| e.command.as_deref());
    if let Some(command) = command.filter(|c| !on_path(c)) {
        let what = format!(
            "no such command {} (the credential plugin is not installed?)",
            names::quote(command)
        );
        return Err(at.fail(format!("{at_user}.exec.command"), what));
    }
    Ok(())
}

/// The user's values that kube sends as headers (a token, impersonation, basic auth).
fn check_auth_headers(auth: &kube::config::AuthInfo, at_user: &str, at: &Where) -> Result<()> {
    use secrecy::ExposeSecret;
    let token = auth.token.as_ref().map(|t| t.expose_secret());
    check_header(token, &format!("{at_user}.token"), at)?;
    check_header(auth.username.as_deref(), &format!("{at_user}.username"), at)?;
    let password = auth.password.as_ref().map(|p| p.expose_secret());
    check_header(password, &format!("{at_user}.password"), at)?;
    check_header(auth.impersonate.as_deref(), &format!("{at_user}.as"), at)?;
    check_header(
        auth.impersonate_uid.as_deref(),
        &format!("{at_user}.as-uid"),
        at,
    )?;
    for group in auth.impersonate_groups.iter().flatten() {
        check_header(Some(group), &format!("{at_user}.as-groups"), at)?;
    }
    Ok(())
}

/// What kube made of the configuration must be usable: an http(s) URL with a host, and a
/// certificate authority that holds a certificate.
fn check_built(config: &kube::Config, server: &str, at_cluster: &str, at: &Where) -> Result<()> {
    let url = &config.cluster_url;
    if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
        let what = format!(
            "expected an http(s) URL with a host (https://host:port), got {}",
            names::quote(server)
        );
        return Err(at.fail(format!("{at_cluster}.server"), what));
    }
    if let Some(port) = url.authority().and_then(|a| explicit_port(a.as_str())) {
        if !port.parse::<u16>().is_ok_and(|p| p > 0) {
            let what = format!(
                "the port {} is not a number from 1 to 65535",
                names::quote(port)
            );
            return Err(at.fail(format!("{at_cluster}.server"), what));
        }
    }
    if config.root_cert.as_ref().is_some_and(Vec::is_empty) {
        let what = "holds no PEM certificate (-----BEGIN CERTIFICATE-----)";
        return Err(at.fail(format!("{at_cluster}.certificate-authority"), what));
    }
    Ok(())
}

/// The port an authority (`user@host:port`, `[::1]:port`) spells out, if any. The URL parser
/// drops a port it cannot read (99999) and kube would then connect to 443: not what was meant.
fn explicit_port(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = host_port.rsplit_once(':')?;
    // `[::1]` alone: the colons are the address's.
    (!host_port.ends_with(']') && (host.starts_with('[') == host.ends_with(']'))).then_some(port)
}

/// The field a kube configuration error is about.
fn kube_error_field(
    e: &kube::config::KubeconfigError,
    at_cluster: &str,
    at_context: &str,
) -> String {
    use kube::config::KubeconfigError as K;
    match e {
        K::ParseClusterUrl(_) | K::MissingClusterUrl => format!("{at_cluster}.server"),
        K::LoadCertificateAuthority(_) | K::ParseCertificates(_) => {
            format!("{at_cluster}.certificate-authority")
        }
        K::ParseProxyUrl(_) => format!("{at_cluster}.proxy-url"),
        _ => at_context.to_string(),
    }
}

/// Resolve a kubeconfig into a client configuration: the context (`context`, else its
/// current-context), that context's cluster, user and namespace, the server URL and certificate
/// authority. No network and no exec plugin run; it reads only files the kubeconfig names.
/// `origin` names the kubeconfig in errors.
///
/// # Errors
/// [`Error::ClusterConfig`] naming the field: no such context or cluster, no or bad server URL,
/// an invalid namespace, an unreadable certificate authority.
pub async fn resolve_kubeconfig(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
    origin: &str,
) -> Result<kube::Config> {
    Ok(resolve(kubeconfig, context, origin).await?.0)
}

/// [`resolve_kubeconfig`], and where the configuration came from.
async fn resolve(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
    origin: &str,
) -> Result<(kube::Config, Source)> {
    let at = Where { origin };
    let (name, ctx) = pick_context(&kubeconfig, context, &at)?;
    let (at_context, at_cluster) = (context_field(&name), cluster_field(&ctx.cluster));
    let cluster = pick_cluster(&kubeconfig, &name, &ctx, &at)?;
    check_user(&kubeconfig, &name, &ctx, &at)?;
    if let Some(file) = cluster.certificate_authority.as_deref() {
        // Only what kube's own read cannot survive: kube names a file that is not there.
        match crate::files::read_capped(Path::new(file), MAX_CREDENTIAL_FILE_BYTES) {
            Ok(_) | Err(crate::files::ReadError::Io(_)) => {}
            Err(e) => {
                let field = format!("{at_cluster}.certificate-authority");
                return Err(at.fail(field, format!("cannot read {}: {e}", names::quote(file))));
            }
        }
    }
    if let Some(ns) = ctx.namespace.as_deref().filter(|n| !n.is_empty()) {
        names::dns_label(ns).map_err(|m| at.fail(format!("{at_context}.namespace"), m))?;
    }
    let source = Source {
        origin: format!("kubeconfig {origin}, context {}", names::quote(&name)),
        user: ctx.user.clone(),
        at: origin.to_string(),
    };
    let options = KubeConfigOptions {
        context: Some(name),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| at.fail(kube_error_field(&e, &at_cluster, &at_context), &e))?;
    check_built(
        &config,
        cluster.server.as_deref().unwrap_or_default(),
        &at_cluster,
        &at,
    )?;
    Ok((config, source))
}

/// Where a configuration came from, for messages: `kubeconfig FILE, context "NAME"`.
#[derive(Clone, Debug)]
struct Source {
    origin: String,
    /// The context's user (whose exec plugin runs).
    user: Option<String>,
    /// The kubeconfig, as errors about its fields start.
    at: String,
}

/// The kubeconfig files kjenv reads without an explicit one: `KUBECONFIG`'s, else
/// `~/.kube/config` if it exists; and how to name them in errors.
fn default_files() -> (Vec<PathBuf>, Option<String>) {
    let env = std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty());
    let files: Vec<PathBuf> = match &env {
        Some(v) => std::env::split_paths(v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => home_kubeconfig()
            .iter()
            .filter(|h| h.exists())
            .cloned()
            .collect(),
    };
    (files, env.map(|v| format!("KUBECONFIG={v}")))
}

/// Merge `files` (the first to set a value wins, as kubectl) and resolve the result.
async fn from_files(
    files: &[PathBuf],
    origin: &str,
    context: Option<&str>,
) -> Result<(kube::Config, Source)> {
    let merged = files.iter().try_fold(Kubeconfig::default(), |merged, f| {
        merged
            .merge(read_kubeconfig(f)?)
            .map_err(|e| config_error(format!("{origin}: {e}")))
    })?;
    resolve(merged, context, origin).await
}

/// Without a kubeconfig: the in-cluster service account, unless a context was asked for.
fn in_cluster(target: &Target, mut tried: Vec<String>) -> Result<kube::Config> {
    if let Some(context) = &target.context {
        let message = format!(
            "no kubeconfig to take context {context:?} from; tried: {}",
            tried.join(", ")
        );
        return Err(Error::ClusterConfig { message });
    }
    kube::Config::incluster().map_err(|e| {
        tried.push(format!("in-cluster service account ({e})"));
        let message = format!(
            "no Kubernetes cluster configuration found; tried: {}; pass kubeconfig=... or set KUBECONFIG",
            tried.join(", ")
        );
        Error::ClusterConfig { message }
    })
}

/// The configuration from the default sources, in kube's `Config::infer` order.
async fn infer_config(target: &Target) -> Result<(kube::Config, Source)> {
    let context = target.context.as_deref();
    let (files, env_origin) = default_files();
    if files.is_empty() {
        let home = match home_kubeconfig() {
            Some(h) => format!("{} (does not exist)", h.display()),
            None => "~/.kube/config (HOME is not set)".to_string(),
        };
        return in_cluster(target, vec!["KUBECONFIG (not set)".to_string(), home])
            .map(|c| (c, Source::in_cluster()));
    }
    let origin = env_origin.unwrap_or_else(|| files[0].display().to_string());
    match from_files(&files, &origin, context).await {
        Ok(found) => Ok(found),
        Err(e) => in_cluster(target, vec![e.to_string()]).map(|c| (c, Source::in_cluster())),
    }
}

impl Source {
    fn in_cluster() -> Source {
        Source {
            origin: "the in-cluster service account".to_string(),
            user: None,
            at: "in-cluster".to_string(),
        }
    }
}

/// Load the client configuration for `target`, in kube's `Config::infer` order.
///
/// # Errors
/// [`Error::ClusterConfig`] naming every source that was tried and why it did not work.
pub async fn load_config(target: &Target) -> Result<kube::Config> {
    Ok(load(target).await?.0)
}

/// [`load_config`], and where the configuration came from.
async fn load(target: &Target) -> Result<(kube::Config, Source)> {
    let (mut config, source) = match &target.kubeconfig {
        Some(path) => {
            let kubeconfig = read_kubeconfig(path)?;
            let origin = path.display().to_string();
            resolve(kubeconfig, target.context.as_deref(), &origin).await?
        }
        None => infer_config(target).await?,
    };
    // kjenv retries transient failures itself, with a bounded budget (see `retry`).
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(10));
    Ok((config, source))
}

/// Run the user's exec credential plugin, if it has one, and give kube its token instead (see
/// [`crate::exec_plugin`] for why kube does not run it). Until when the token holds.
async fn exec_credential(config: &mut kube::Config, source: &Source) -> Result<Option<SystemTime>> {
    let Some(exec) = config.auth_info.exec.take() else {
        return Ok(None);
    };
    let user = names::quote(source.user.as_deref().unwrap_or_default());
    let field = format!("{}: users[{user}].user.exec", source.at);
    let timeout = crate::exec_plugin::timeout_from_env(&|k| std::env::var(k).ok());
    let credential = crate::exec_plugin::run(&exec, &field, timeout).await?;
    let Some(token) = credential.token else {
        return Err(config_error(format!(
            "{field}: the credential plugin answered with a client certificate; kjenv supports tokens only"
        )));
    };
    config.auth_info.token = Some(token.into());
    Ok(credential.expires)
}

/// A connection failure, named by where the configuration pointed: the URL, the kubeconfig and
/// context, and whether the connection was refused or timed out.
#[derive(Debug)]
struct ConnectError {
    place: Arc<str>,
    how: String,
    source: tower::BoxError,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot connect to {}: {}", self.place, self.how)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// What went wrong in a transport error, in a few words: whether the connection was refused or
/// timed out, else the innermost cause.
fn how(err: &(dyn std::error::Error + 'static)) -> String {
    let mut at: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut last = err;
    while let Some(e) = at {
        if e.is::<tower::timeout::error::Elapsed>() {
            return "timed out (no response within the request time limit)".into();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::TimedOut => return "connection timed out".into(),
                _ => {}
            }
        }
        last = e;
        at = e.source();
    }
    last.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Errors of the transport become [`ConnectError`]s naming `place`; kube's own pass unchanged.
fn describe(place: Arc<str>) -> impl Fn(tower::BoxError) -> tower::BoxError + Clone {
    move |err| {
        if err.is::<kube::Error>() {
            return err;
        }
        let how = how(&*err);
        Box::new(ConnectError {
            place: place.clone(),
            how,
            source: err,
        })
    }
}

/// A client whose requests each get their response headers within `header_timeout`. Only the
/// headers: a watch or a followed log then streams as long as it lasts. kube leaves a request
/// that never answers unbounded, and a watcher's list has no other time limit.
fn client(config: kube::Config, header_timeout: Duration, source: &Source) -> Result<kube::Client> {
    let place: Arc<str> = format!("{} ({})", config.cluster_url, source.origin).into();
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|e| Error::ClusterConfig {
            message: format!("cannot build a Kubernetes client: {e}"),
        })?;
    let timeout = tower::timeout::TimeoutLayer::new(header_timeout);
    let named = tower::util::MapErrLayer::new(describe(place));
    Ok(builder.with_layer(&timeout).with_layer(&named).build())
}

/// A cached connection and until when its credential holds (an exec plugin's token).
type Cached = (Connection, Option<SystemTime>);

/// Whether a credential that holds until `expires` should be renewed now (a little early, so
/// that it does not expire during a request).
fn expired(expires: Option<SystemTime>) -> bool {
    expires.is_some_and(|t| SystemTime::now() + Duration::from_secs(30) >= t)
}

/// The client for `target`, made once per configuration and reused (until its exec plugin's
/// token expires). A request that gets no response headers within `request_timeout` (and a
/// little more, so that a retried call's own time limit comes first) fails as a connection error.
///
/// # Errors
/// [`Error::ClusterConfig`] when no configuration can be loaded, its credential plugin fails or
/// the client cannot be built.
pub async fn connect(target: &Target, request_timeout: Duration) -> Result<Connection> {
    let key = cache_key(target, request_timeout);
    let cached = CLIENTS.with(|c| c.borrow().get(&key).cloned());
    if let Some((conn, _)) = cached.filter(|(_, e)| !expired(*e)) {
        return Ok(conn);
    }
    let (mut config, source) = load(target).await?;
    let expires = exec_credential(&mut config, &source).await?;
    let default_namespace = config.default_namespace.clone();
    let client = client(config, request_timeout + Duration::from_secs(1), &source)?;
    let conn = Connection {
        client,
        default_namespace,
    };
    CLIENTS.with(|c| {
        let mut map = c.borrow_mut();
        // Clients of this process for an earlier state of the same files are stale.
        map.retain(|(t, e, _, pid, _), _| *pid == std::process::id() && (t, e) != (&key.0, &key.1));
        map.insert(key, (conn.clone(), expires));
        Ok(conn)
    })
}

static NAMESPACES: Mutex<Option<HashMap<Key, Option<String>>>> = Mutex::new(None);

/// The namespace the configuration of `target` defaults to (None without a configuration),
/// read once per configuration and remembered. Synchronous: loading a configuration reads
/// files only (no network, no credential plugin), so `render()` needs no runtime.
pub fn default_namespace(target: &Target) -> Option<String> {
    let key = cache_key(target, Duration::ZERO);
    if let Some(known) = NAMESPACES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return known.clone();
    }
    let namespace = futures::executor::block_on(load_config(target))
        .ok()
        .map(|c| c.default_namespace);
    NAMESPACES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, namespace.clone());
    namespace
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "current-context: dev\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:6443\ncontexts:\n- name: dev\n  context:\n    cluster: local\n    namespace: team-a\n    user: me\nusers:\n- name: me\n  user:\n    token: t\n";

    fn resolve(text: &str, context: Option<&str>) -> Result<kube::Config> {
        let kubeconfig = parse_kubeconfig(text, "kc")?;
        futures::executor::block_on(resolve_kubeconfig(kubeconfig, context, "kc"))
    }

    #[test]
    fn resolves_context_cluster_and_namespace() {
        let config = resolve(KUBECONFIG, None).unwrap();
        assert_eq!(config.default_namespace, "team-a");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
    }

    #[test]
    fn errors_name_the_field_on_one_line() {
        let err = |text: &str, context| resolve(text, context).unwrap_err().to_string();
        assert_eq!(
            err(KUBECONFIG, Some("prod")),
            "kc: context: no context named \"prod\" in the kubeconfig (there are \"dev\")"
        );
        let e = err(&KUBECONFIG.replace("cluster: local", "cluster: x"), None);
        assert!(e.starts_with("kc: contexts[\"dev\"].context.cluster: no cluster named \"x\""));
        let e = err(&KUBECONFIG.replace("https://", "ftp://"), None);
        assert!(e.starts_with("kc: clusters[\"local\"].cluster.server: expected an http(s) URL"));
        let e = err(&KUBECONFIG.replace("team-a", "Team A"), None);
        assert!(e.starts_with("kc: contexts[\"dev\"].context.namespace: expected a DNS-1123"));
        let e = err("clusters: [\n  {name: a\n", None);
        assert_eq!(e, "kc:2:3: invalid kubeconfig: unclosed bracket '{'");
    }

    #[test]
    fn odd_length_utf16_is_not_text() {
        assert_eq!(decode(b"\xff\xfe\xff"), None);
        assert_eq!(decode(b"\xff\xfea\x00").as_deref(), Some("a"));
        assert_eq!(decode(b"\xef\xbb\xbfa").as_deref(), Some("a"));
    }
}
