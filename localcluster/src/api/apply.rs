//! Server-side apply: `PATCH` with `application/apply-patch+yaml` creates the object or merges
//! the configuration into it (`fieldmanager::apply`), with kube-apiserver's checks of
//! `fieldManager` and `force`; and the writer (`fieldManager`, else the User-Agent's product)
//! that every other write records in `managedFields`.

use std::sync::Arc;

use hyper::{header, Response};
use serde_json::Value;

use super::crud::{apply_update, create_object, prepare_create_body};
use super::target::Target;
use super::{field_validation, json_response, Body, Req};
use crate::error::ApiError;
use crate::fieldmanager::schema::Schema;
use crate::fieldmanager::walk::first_undeclared;
use crate::fieldmanager::{self, Writer};
use crate::Cluster;

/// Whether a PATCH's Content-Type asks for server-side apply.
pub fn is_apply(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/apply-patch+yaml")
}

fn invalid_option(field: &str, detail: &str) -> ApiError {
    ApiError::invalid_options("PatchOptions", field, detail)
}

/// Who writes: `fieldManager`, else the product of the User-Agent (`kubectl-label` of
/// `kubectl-label/v1.33.1 (linux/amd64) …`), as kube-apiserver names managers.
///
/// # Errors
/// 422 for a `fieldManager` longer than 128 bytes.
pub fn writer(req: &Req, subresource: Option<&str>) -> Result<Writer, ApiError> {
    let manager = match req.param("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) if m.len() > 128 => {
            return Err(invalid_option(
                "fieldManager",
                "Too long: may not be more than 128 bytes",
            ))
        }
        Some(m) => m.to_string(),
        None => {
            let ua = req.header(header::USER_AGENT).unwrap_or("");
            ua.split('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(128)
                .collect()
        }
    };
    Ok(Writer {
        manager,
        subresource: subresource.map(String::from),
    })
}

/// `force` belongs to apply only.
///
/// # Errors
/// 422 `force: Forbidden: may not be specified for non-apply patch`.
pub fn refuse_force(req: &Req) -> Result<(), ApiError> {
    match req.param("force") {
        Some(_) => Err(invalid_option(
            "force",
            "Forbidden: may not be specified for non-apply patch",
        )),
        None => Ok(()),
    }
}

/// The applied configuration: YAML (JSON is YAML too), an object of this kind whose every
/// field the schema declares (whatever `fieldValidation` says, as on kube-apiserver).
fn configuration(req: &Req, t: &Target) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    let config: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the applied configuration must be an object",
        ));
    }
    let (api_version, kind) = (
        config["apiVersion"].as_str().unwrap_or(""),
        config["kind"].as_str().unwrap_or(""),
    );
    if api_version != t.kind.api_version() || kind != t.kind.kind() {
        let gv = if api_version.contains('/') {
            api_version.to_string()
        } else {
            format!("/{api_version}")
        };
        return Err(ApiError::bad_request(format!(
            "invalid object type: {gv}, Kind={kind}"
        )));
    }
    if let Some(field) = Schema::of(t.kind).and_then(|sc| first_undeclared(&sc, &config)) {
        let meta = |f: &str| {
            config
                .pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
        };
        let gv = t.kind.api_version();
        let gv = if gv.contains('/') {
            gv.to_string()
        } else {
            format!("/{gv}")
        };
        return Err(ApiError::new(
            500,
            "",
            format!(
                "failed to create typed patch object ({}/{}; {gv}, Kind={kind}): {field}: field not declared in schema",
                meta("namespace").unwrap_or(""),
                meta("name").unwrap_or(""),
            ),
        ));
    }
    Ok(config)
}

/// The name in the configuration, when it names one, must be the URL's.
fn check_name(merged: &Value, t: &Target) -> Result<(), ApiError> {
    let name = t.name.as_deref().unwrap_or("");
    match merged.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// `PATCH` with an apply configuration: creates the object when it is missing, merges the
/// configuration into it otherwise.
///
/// # Errors
/// 422 without `fieldManager`; 409 for conflicts with other managers (unless `force=true`);
/// 400/404/422 as for other writes.
pub fn apply(cluster: &Arc<Cluster>, req: &Req, t: &Target) -> Result<Response<Body>, ApiError> {
    if req.param("fieldManager").is_none_or(str::is_empty) {
        return Err(invalid_option(
            "fieldManager",
            "Required value: is required for apply patch",
        ));
    }
    let w = writer(req, t.sub.as_deref())?;
    let force = req.flag("force");
    field_validation::mode(req, "PatchOptions")?;
    let config = configuration(req, t)?;
    let (ns, name) = (
        t.ns.as_deref().unwrap_or(""),
        t.name.as_deref().unwrap_or(""),
    );
    let mut attempts = 0;
    let resp = loop {
        attempts += 1;
        if attempts > 4 {
            return Err(ApiError::conflict(t.kind, name));
        }
        if cluster.store.get_arc(t.kind, ns, name).is_none() {
            if t.sub.is_some() {
                return Err(ApiError::not_found(t.kind, name));
            }
            let mut body = config.clone();
            prepare_create_body(t, &mut body)?;
            let obj = fieldmanager::apply(t.kind, None, &body, &w, force)?;
            check_name(&obj, t)?;
            match create_object(cluster, t, obj, req.dry_run(), |_| {}) {
                Ok(created) => break json_response(201, &created),
                Err(e) if e.reason == "AlreadyExists" => continue,
                Err(e) => return Err(e),
            }
        }
        let kind = t.kind;
        let sub = t.sub.as_deref();
        let updated = cluster
            .store
            .update_opts(kind, ns, name, req.dry_run(), |cur| {
                let merged = fieldmanager::apply(kind, Some(cur), &config, &w, force)?;
                check_name(&config, t)?;
                apply_update(kind, sub, cur, merged, None)
            });
        match updated {
            Ok(obj) => break json_response(200, &obj),
            Err(e) if e.reason == "NotFound" => continue,
            Err(e) => return Err(e),
        }
    };
    Ok(resp)
}
