//! Exec credential plugins (`users[].user.exec`), run by kjenv rather than by kube: kube runs
//! them with `std::process`, which has no time limit, cannot be interrupted by Ctrl-C and reads
//! all they print. Here a plugin gets a time limit, is killed (with its children) when the call
//! is dropped or times out, and has its output capped; its token goes to kube as a plain token.

use std::time::{Duration, SystemTime};

use kube::config::ExecConfig;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};
use crate::spec::names;

/// The environment variable that sets a plugin's time limit, in seconds.
pub const EXEC_TIMEOUT_ENV: &str = "KJENV_EXEC_TIMEOUT";

/// A plugin's time limit when [`EXEC_TIMEOUT_ENV`] sets none (a browser login takes a while).
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// The most a plugin may print; a real ExecCredential is a few kilobytes.
pub const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// What a plugin answered: a token or a client certificate, and until when it holds.
pub struct Credential {
    pub token: Option<String>,
    pub client_certificate_data: Option<String>,
    pub client_key_data: Option<String>,
    pub expires: Option<SystemTime>,
}

#[derive(Deserialize)]
struct Answer {
    status: Option<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    token: Option<String>,
    client_certificate_data: Option<String>,
    client_key_data: Option<String>,
    expiration_timestamp: Option<String>,
}

/// The time limit from `env` (a positive number of seconds), else [`DEFAULT_EXEC_TIMEOUT`].
pub fn timeout_from_env(env: &dyn Fn(&str) -> Option<String>) -> Duration {
    env(EXEC_TIMEOUT_ENV)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(DEFAULT_EXEC_TIMEOUT)
}

/// Kills the plugin's process group when dropped: on Ctrl-C (the call's future is dropped), on
/// a timeout, on too much output. A shell-script plugin's children go with it.
struct KillGroup(Option<u32>);

impl KillGroup {
    fn kill(&self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: killpg sends a signal; the group is the plugin's own (process_group(0)).
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for KillGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

fn command(exec: &ExecConfig, program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(exec.args.iter().flatten());
    for var in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (var.get("name"), var.get("value")) {
            cmd.env(name, value);
        }
    }
    let mut spec = serde_json::json!({"interactive": false});
    if let Some(cluster) = exec.cluster.as_ref() {
        spec["cluster"] = serde_json::to_value(cluster).unwrap_or_default();
    }
    let info = serde_json::json!({
        "apiVersion": exec.api_version.as_deref().unwrap_or("client.authentication.k8s.io/v1"),
        "kind": "ExecCredential",
        "spec": spec,
    });
    cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
    for name in exec.drop_env.iter().flatten() {
        cmd.env_remove(name);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    cmd
}

/// The last line a failed plugin wrote to stderr, shortened.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let line: String = line
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(160)
        .collect();
    if line.is_empty() {
        String::new()
    } else {
        format!(": {line}")
    }
}

/// Run the plugin and read its answer. `field` (`kubeconfig: users["me"].user.exec`) starts
/// every error.
///
/// # Errors
/// [`Error::ClusterConfig`], one line naming `field`: the plugin cannot start, fails, takes
/// longer than `timeout`, prints more than [`MAX_OUTPUT_BYTES`] or no ExecCredential.
pub async fn run(exec: &ExecConfig, field: &str, timeout: Duration) -> Result<Credential> {
    let fail = |what: String| Error::ClusterConfig {
        message: format!("{field}: {what}"),
    };
    let program = exec.command.as_deref().unwrap_or_default();
    let shown = names::quote(program);
    let mut child = command(exec, program)
        .spawn()
        .map_err(|e| fail(format!("cannot run the credential plugin {shown}: {e}")))?;
    let group = KillGroup(child.id());
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            let read = match stdout.as_mut() {
                Some(s) => s.take(MAX_OUTPUT_BYTES + 1).read_to_end(&mut out).await,
                None => Ok(0),
            };
            // A plugin that floods its output is stopped, so that its stderr ends too.
            if out.len() as u64 > MAX_OUTPUT_BYTES {
                group.kill();
            }
            read.map(|_| ())
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(64 * 1024).read_to_end(&mut err).await;
            }
        };
        let (read, ()) = tokio::join!(read_out, read_err);
        if out.len() as u64 > MAX_OUTPUT_BYTES {
            return Err(format!(
                "the credential plugin {shown} printed more than {MAX_OUTPUT_BYTES} bytes"
            ));
        }
        read.map_err(|e| format!("cannot read the credential plugin {shown}'s answer: {e}"))?;
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!(
                "the credential plugin {shown} failed ({status}){}",
                last_line(&err)
            ));
        }
        Ok(out)
    };
    let out = match tokio::time::timeout(timeout, work).await {
        Ok(answer) => answer.map_err(fail)?,
        Err(_) => {
            return Err(fail(format!(
                "the credential plugin {shown} did not answer within {timeout:.0?} \
                 ({EXEC_TIMEOUT_ENV} sets the limit)"
            )))
        }
    };
    parse(&out).map_err(|what| fail(format!("the credential plugin {shown} {what}")))
}

/// The ExecCredential a plugin printed (JSON, as client-go expects).
fn parse(out: &[u8]) -> std::result::Result<Credential, String> {
    let answer: Answer = serde_json::from_slice(out).map_err(|e| {
        format!(
            "did not print an ExecCredential (expected JSON with status.token): {}",
            e.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let status = answer
        .status
        .ok_or("printed an ExecCredential without status")?;
    let expires = match status.expiration_timestamp.as_deref() {
        None | Some("") => None,
        Some(t) => {
            let at: k8s_openapi::jiff::Timestamp = t.parse().map_err(|_| {
                format!(
                    "printed an invalid status.expirationTimestamp {}",
                    names::quote(t)
                )
            })?;
            let secs = u64::try_from(at.as_second()).unwrap_or(0);
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        }
    };
    let token = status.token.filter(|t| !t.is_empty());
    if token
        .as_deref()
        .is_some_and(|t| !crate::header::header_safe(t))
    {
        return Err("printed a status.token with a control or non-ASCII character".into());
    }
    let has_cert = status.client_certificate_data.is_some() && status.client_key_data.is_some();
    if token.is_none() && !has_cert {
        return Err("printed no status.token (nor clientCertificateData and clientKeyData)".into());
    }
    Ok(Credential {
        token,
        client_certificate_data: status.client_certificate_data,
        client_key_data: status.client_key_data,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_or_refused_in_one_line() {
        let good = br#"{"kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;
        let c = parse(good).unwrap();
        assert_eq!(c.token.as_deref(), Some("t"));
        assert!(c.expires.is_some());
        for bad in [
            &b"garbage\nmore"[..],
            b"{}",
            br#"{"status":{"token":"a\r\nb"}}"#,
        ] {
            let e = parse(bad).err().unwrap();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_timeout_comes_from_the_environment() {
        let env = |v: &'static str| move |_: &str| Some(v.to_string());
        assert_eq!(timeout_from_env(&env("2")), Duration::from_secs(2));
        assert_eq!(timeout_from_env(&env("x")), DEFAULT_EXEC_TIMEOUT);
    }
}
