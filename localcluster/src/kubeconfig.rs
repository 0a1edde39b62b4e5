//! Writes the kubeconfig (mode 0600) that points kubectl, kube-rs and the Python client at the
//! local cluster: server + CA data, bearer token, context `local` with a namespace.

use std::io::Write;
use std::path::Path;

use base64::Engine;

use crate::error::Error;

/// The kubeconfig text for `server` with CA `ca_pem`, `token` and `namespace`.
pub fn render(server: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: local\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: local\n    namespace: {namespace}\ncurrent-context: local\npreferences: {{}}\n"
    )
}

/// Writes [`render`]'s text to `path` with mode 0600.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write(
    path: &Path,
    server: &str,
    ca_pem: &str,
    token: &str,
    namespace: &str,
) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(0o600);
        let mut f = opts.open(path).map_err(io)?;
        // The mode only applies to new files; tighten an existing one too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        f.write_all(render(server, ca_pem, token, namespace).as_bytes())
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        let mut f = opts.open(path).map_err(io)?;
        f.write_all(render(server, ca_pem, token, namespace).as_bytes())
            .map_err(io)?;
    }
    Ok(())
}
