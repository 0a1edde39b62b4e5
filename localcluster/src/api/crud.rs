//! Create, get, list, replace, patch and delete of every served kind (plus `/status`), with
//! per-kind defaulting/validation, `dryRun=All`, and Job/Pod delete answers.

use std::sync::Arc;

use base64::Engine;
use hyper::{header, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::admission::admit_pod;
use super::apply;
use super::listitem::ListItem;
use super::selectors::{FieldSelector, LabelSelector};
use super::target::{Format, Target};
use super::validation::{check_quantities, default_pod_spec, validate_meta, validate_pod_spec};
use super::{
    configdata, event, field_validation, job, json_bytes, json_response, patch, table, Body, Req,
};
use crate::error::{ApiError, Cause};
use crate::fieldmanager::{self, Writer};
use crate::store::{generate_name, meta_str, DeleteOptions, Kind, Propagation};
use crate::Cluster;

/// The warning sent when a Job is deleted without a propagation policy.
const ORPHAN_WARNING: &str = "299 - \"child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning\"";

fn ns_of(t: &Target) -> &str {
    t.ns.as_deref().unwrap_or("")
}

fn name_of(t: &Target) -> &str {
    t.name.as_deref().unwrap_or("")
}

/// Renders one object as JSON or as a Table.
fn object_response(code: u16, kind: Kind, obj: &Value, format: Format) -> Response<Body> {
    match format {
        Format::Json => json_response(code, obj),
        Format::Table => json_response(code, &table::table(kind, std::slice::from_ref(obj), None)),
    }
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let root = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Checks `kind`/`apiVersion` of a body when present, then sets them.
fn check_type(kind: Kind, obj: &mut Value) -> Result<(), ApiError> {
    let root = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    if let Some(v) = root
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        if v != kind.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                kind.api_version()
            )));
        }
    }
    if let Some(k) = root
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
    {
        if k != kind.kind() {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the expected kind ({})",
                kind.kind()
            )));
        }
    }
    // Put kind/apiVersion first, as the API server prints them.
    let rest: Map<String, Value> = std::mem::take(root);
    root.insert("kind".into(), json!(kind.kind()));
    root.insert("apiVersion".into(), json!(kind.api_version()));
    for (k, v) in rest {
        if k != "kind" && k != "apiVersion" {
            root.insert(k, v);
        }
    }
    Ok(())
}

fn check_namespace(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let want = ns_of(t).to_string();
    let meta = meta_mut(obj)?;
    if t.kind.namespaced() {
        if let Some(ns) = meta
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            if ns != want {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        meta.insert("namespace".into(), json!(want));
    } else {
        meta.remove("namespace");
    }
    Ok(())
}

/// Per-kind defaulting and validation of a new object (name and uid set).
fn prepare_new(kind: Kind, obj: &mut Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").to_string();
    let invalid = |causes: Vec<Cause>| -> Result<(), ApiError> {
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(kind, &name, causes))
        }
    };
    match kind {
        Kind::Job => {
            job::prepare_create(obj)?;
            obj["status"] = json!({});
            Ok(())
        }
        Kind::Pod => {
            check_quantities(Kind::Pod, &obj["spec"])?;
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            default_pod_spec(&mut obj["spec"], true);
            admit_pod(&mut obj["spec"]);
            let mut causes = Vec::new();
            validate_meta(kind, obj, &mut causes);
            validate_pod_spec(&obj["spec"], "spec", false, &mut causes);
            invalid(causes)?;
            let qos = crate::resources::qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
            Ok(())
        }
        Kind::Namespace => {
            let mut causes = Vec::new();
            validate_meta(kind, obj, &mut causes);
            invalid(causes)?;
            if let Ok(meta) = meta_mut(obj) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            Ok(())
        }
        Kind::Secret => {
            let mut causes = Vec::new();
            validate_meta(kind, obj, &mut causes);
            invalid(causes)?;
            fold_string_data(obj)?;
            let mut causes = Vec::new();
            configdata::validate_keys(obj, &mut causes);
            invalid(causes)
        }
        Kind::ConfigMap => {
            let mut causes = Vec::new();
            validate_meta(kind, obj, &mut causes);
            configdata::validate_keys(obj, &mut causes);
            invalid(causes)
        }
        Kind::Event => {
            let mut causes = Vec::new();
            validate_meta(kind, obj, &mut causes);
            event::validate_namespace(obj, &mut causes);
            invalid(causes)?;
            event::default_fields(obj);
            Ok(())
        }
    }
}

/// Secrets: `stringData` is merged into `data` (base64) and dropped; `type` defaults to Opaque.
fn fold_string_data(obj: &mut Value) -> Result<(), ApiError> {
    let Some(root) = obj.as_object_mut() else {
        return Ok(());
    };
    if root.get("type").is_none_or(Value::is_null) {
        root.insert("type".into(), json!("Opaque"));
    }
    if let Some(Value::Object(sd)) = root.remove("stringData") {
        let data = root.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(d) = data.as_object_mut() {
            for (k, v) in sd {
                let text = v.as_str().unwrap_or("").to_string();
                d.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
    configdata::check_base64(obj)
}

/// `POST` to a collection.
///
/// # Errors
/// 400/404/409/422 as the API server answers them.
pub fn create(cluster: &Arc<Cluster>, req: &Req, t: &Target) -> Result<Response<Body>, ApiError> {
    if t.kind.namespaced() && t.ns.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let warnings = field_validation::check_body(req, t.kind, "CreateOptions")?;
    let mut obj = req.json_body(t.kind.kind())?;
    field_validation::prune(t.kind, &mut obj);
    prepare_create_body(t, &mut obj)?;
    let w = apply::writer(req, None)?;
    let created = create_object(cluster, t, obj, req.dry_run(), |c| {
        fieldmanager::record_update(t.kind, None, c, &w)
    })?;
    let mut resp = json_response(201, &created);
    field_validation::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// Checks a new object's kind and namespace and drops what only the server sets.
///
/// # Errors
/// 400/405 as the API server answers them.
pub(crate) fn prepare_create_body(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    if t.kind.namespaced() && t.ns.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    check_type(t.kind, obj)?;
    check_namespace(t, obj)?;
    let meta = meta_mut(obj)?;
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(field);
    }
    Ok(())
}

/// Stores a new object (a name made from `generateName` when it has none), its defaults set,
/// then `manage` records its managers.
///
/// # Errors
/// 404 for a missing namespace, 409/422 as the API server answers them.
pub(crate) fn create_object(
    cluster: &Arc<Cluster>,
    t: &Target,
    mut obj: Value,
    dry_run: bool,
    manage: impl Fn(&mut Value),
) -> Result<Value, ApiError> {
    let (given, prefix) = crate::store::name_and_prefix(t.kind, meta_mut(&mut obj)?)?;
    if t.kind.namespaced()
        && cluster
            .store
            .get_arc(Kind::Namespace, "", ns_of(t))
            .is_none()
    {
        return Err(ApiError::not_found(Kind::Namespace, ns_of(t)));
    }
    let mut attempt = 0;
    loop {
        let mut candidate = obj.clone();
        let m = meta_mut(&mut candidate)?;
        if given.is_empty() {
            m.insert("name".into(), json!(generate_name(&prefix)));
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        prepare_new(t.kind, &mut candidate)?;
        manage(&mut candidate);
        match cluster.store.create_opts(t.kind, candidate, dry_run) {
            Ok(created) => return Ok(created),
            Err(e) if e.reason == "AlreadyExists" && given.is_empty() && attempt < 8 => {
                attempt += 1
            }
            Err(e) => return Err(e),
        }
    }
}

/// `GET` of one object (or its `/status`).
///
/// # Errors
/// 404 when missing.
pub fn get(
    cluster: &Arc<Cluster>,
    _req: &Req,
    t: &Target,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let obj = cluster
        .store
        .get_arc(t.kind, ns_of(t), name_of(t))
        .ok_or_else(|| ApiError::not_found(t.kind, name_of(t)))?;
    Ok(object_response(200, t.kind, &obj, format))
}

/// The selectors of a list or watch request.
pub struct Selection {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
}

impl Selection {
    /// Parses the request's selectors.
    ///
    /// # Errors
    /// 400 on a parse error or an unsupported field.
    pub fn from_req(req: &Req, kind: Kind) -> Result<Selection, ApiError> {
        Ok(Selection {
            labels: LabelSelector::parse(req.param("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(kind, req.param("fieldSelector").unwrap_or(""))?,
        })
    }

    /// Whether an object is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

#[derive(Serialize)]
struct ListOut<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ListMeta,
    items: Vec<ListItem<'a>>,
}

#[derive(Serialize)]
struct ListMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: String,
}

/// `GET` of a collection (namespaced or cluster-wide).
///
/// # Errors
/// 400 for bad selectors.
/// The resourceVersion of a list with `resourceVersionMatch=Exact` (None for other lists),
/// checked as kube-apiserver checks ListOptions.
///
/// # Errors
/// 422 for a match without a resourceVersion, an unknown match, or Exact at "0".
fn exact_rv(req: &Req) -> Result<Option<u64>, ApiError> {
    let Some(matching) = req.param("resourceVersionMatch").filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let rv = req.param("resourceVersion").unwrap_or("");
    let invalid =
        |detail: &str| ApiError::invalid_options("ListOptions", "resourceVersionMatch", detail);
    if rv.is_empty() {
        return Err(invalid(
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    match matching {
        "NotOlderThan" => Ok(None),
        "Exact" if rv == "0" => Err(invalid(
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        )),
        "Exact" => rv
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\""))),
        other => Err(invalid(&format!(
            "Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
        ))),
    }
}

pub fn list(
    cluster: &Arc<Cluster>,
    req: &Req,
    t: &Target,
    format: Format,
) -> Result<Response<Body>, ApiError> {
    let sel = Selection::from_req(req, t.kind)?;
    let (items, rv) = match (exact_rv(req)?, sel.fields.pinned_name(), t.ns.as_deref()) {
        (Some(rv), _, ns) => (cluster.store.list_at(t.kind, ns, rv)?, rv),
        // kubectl wait/delete select one object by name: skip the scan.
        (None, Some(name), Some(ns)) => {
            let rv = cluster.store.current_rv();
            (
                cluster
                    .store
                    .get_arc(t.kind, ns, name)
                    .into_iter()
                    .collect(),
                rv,
            )
        }
        _ => cluster.store.list_arc(t.kind, t.ns.as_deref()),
    };
    let selected: Vec<&Value> = items
        .iter()
        .map(|a| a.as_ref())
        .filter(|o| sel.matches(o))
        .collect();
    if format == Format::Table {
        let owned: Vec<Value> = selected.into_iter().cloned().collect();
        return Ok(json_response(200, &table::table(t.kind, &owned, Some(rv))));
    }
    let out = ListOut {
        kind: t.kind.list_kind(),
        api_version: t.kind.api_version(),
        metadata: ListMeta {
            resource_version: rv.to_string(),
        },
        items: selected.into_iter().map(ListItem).collect(),
    };
    Ok(json_bytes(
        200,
        serde_json::to_vec(&out).map_err(ApiError::internal)?,
    ))
}

/// A Job's or a pod's condition times are Go structs (`metav1.Time`), which kube-apiserver
/// writes as `null` when a client left them out of a status write.
fn null_condition_times(kind: Kind, status: &mut Value) {
    if !matches!(kind, Kind::Job | Kind::Pod) {
        return;
    }
    let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
        for field in ["lastProbeTime", "lastTransitionTime"] {
            c.entry(field).or_insert(Value::Null);
        }
    }
}

/// Applies an update body to the stored object `cur` (inside the store's lock).
/// `w` is the writer whose update managedFields record; None for server-side apply, whose
/// object carries its managedFields already.
pub(crate) fn apply_update(
    kind: Kind,
    sub: Option<&str>,
    cur: &mut Value,
    mut new: Value,
    w: Option<&Writer>,
) -> Result<(), ApiError> {
    let name = meta_str(cur, "name").to_string();
    if let Some(rv) = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        if rv != meta_str(cur, "resourceVersion") {
            return Err(ApiError::conflict(kind, &name));
        }
    }
    if sub == Some("status") {
        let mut next = cur.clone();
        next["status"] = new.get("status").cloned().unwrap_or(json!({}));
        null_condition_times(kind, &mut next["status"]);
        if let Some(w) = w {
            fieldmanager::record_update(kind, Some(cur), &mut next, w);
        } else if let Some(m) = new.pointer("/metadata/managedFields") {
            next["metadata"]["managedFields"] = m.clone();
        }
        *cur = next;
        return Ok(());
    }
    check_type(kind, &mut new)?;
    keep_server_fields(cur, &mut new)?;
    let mut causes = Vec::new();
    match kind {
        Kind::Job => job::prepare_update(cur, &mut new)?,
        Kind::Pod => {
            check_quantities(Kind::Pod, &new["spec"])?;
            default_pod_spec(&mut new["spec"], true);
            // A stored pod has its create defaults; compare against them (older stores too).
            let mut stored = cur["spec"].clone();
            default_pod_spec(&mut stored, true);
            if !pod_spec_change_allowed(&stored, &new["spec"]) {
                causes.push(Cause::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
            validate_meta(kind, &new, &mut causes);
        }
        Kind::Namespace => {
            new["spec"] = cur.get("spec").cloned().unwrap_or(json!({}));
            validate_meta(kind, &new, &mut causes);
        }
        Kind::Secret => {
            validate_meta(kind, &new, &mut causes);
            fold_string_data(&mut new)?;
            configdata::validate_keys(&new, &mut causes);
        }
        Kind::ConfigMap => {
            validate_meta(kind, &new, &mut causes);
            configdata::validate_keys(&new, &mut causes);
        }
        Kind::Event => {
            validate_meta(kind, &new, &mut causes);
            event::validate_namespace(&new, &mut causes);
            event::default_fields(&mut new);
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(kind, &name, causes));
    }
    drop_empty_meta_maps(&mut new);
    if let Some(w) = w {
        fieldmanager::record_update(kind, Some(cur), &mut new, w);
    }
    *cur = new;
    Ok(())
}

/// Drops empty `metadata.labels` and `metadata.annotations`: kube-apiserver's ObjectMeta
/// omits an empty map, so a patch removing the last label answers with no `labels` at all.
fn drop_empty_meta_maps(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations"] {
            if meta
                .get(field)
                .and_then(Value::as_object)
                .is_some_and(serde_json::Map::is_empty)
            {
                meta.remove(field);
            }
        }
    }
}

/// Carries what only the server sets (identity, timestamps, generation) and the status
/// over from the stored object: the main resource never changes status (`/status` does).
fn keep_server_fields(cur: &Value, new: &mut Value) -> Result<(), ApiError> {
    let meta = meta_mut(new)?;
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match cur.pointer(&format!("/metadata/{field}")) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    match cur.get("status") {
        Some(s) => new["status"] = s.clone(),
        None => {
            if let Some(m) = new.as_object_mut() {
                m.remove("status");
            }
        }
    }
    Ok(())
}

/// Whether a pod update changes only what Kubernetes lets change: images, the active
/// deadline and tolerations.
fn pod_spec_change_allowed(cur: &Value, new: &Value) -> bool {
    let blank = |v: &Value| {
        let mut s = v.clone();
        for list in ["initContainers", "containers"] {
            for c in s[list].as_array_mut().into_iter().flatten() {
                c["image"] = Value::Null;
            }
        }
        if let Some(m) = s.as_object_mut() {
            m.remove("activeDeadlineSeconds");
            m.remove("tolerations");
        }
        s
    };
    blank(cur) == blank(new)
}

/// `PUT` of an object or its `/status`, with the resourceVersion conflict check.
///
/// # Errors
/// 400/404/409/422.
pub fn replace(cluster: &Arc<Cluster>, req: &Req, t: &Target) -> Result<Response<Body>, ApiError> {
    let warnings = field_validation::check_body(req, t.kind, "UpdateOptions")?;
    let mut body = req.json_body(t.kind.kind())?;
    field_validation::prune(t.kind, &mut body);
    let name = name_of(t);
    if let Some(n) = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        if n != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    check_namespace(t, &mut body)?;
    let sub = t.sub.as_deref();
    let w = apply::writer(req, sub)?;
    let updated = cluster
        .store
        .update_opts(t.kind, ns_of(t), name, req.dry_run(), |cur| {
            apply_update(t.kind, sub, cur, body, Some(&w))
        })?;
    let mut resp = json_response(200, &updated);
    field_validation::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// `PATCH` (merge, strategic-merge, JSON patch) of an object or its `/status`.
///
/// # Errors
/// 400 for a bad patch body, 415 for an unsupported patch type, 404/409/422.
pub fn patch(cluster: &Arc<Cluster>, req: &Req, t: &Target) -> Result<Response<Body>, ApiError> {
    let ct = req
        .header(header::CONTENT_TYPE)
        .unwrap_or("application/merge-patch+json");
    if apply::is_apply(ct) {
        return apply::apply(cluster, req, t);
    }
    let ptype = patch::PatchType::from_content_type(ct)?;
    apply::refuse_force(req)?;
    let mode = field_validation::mode(req, "PatchOptions")?;
    let mut warnings = Vec::new();
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let sub = t.sub.as_deref();
    let kind = t.kind;
    let w = apply::writer(req, sub)?;
    let updated = cluster
        .store
        .update_opts(kind, ns_of(t), name_of(t), req.dry_run(), |cur| {
            let mut patched = patch::apply(ptype, cur, &body)?;
            let strategic = (ptype == patch::PatchType::Strategic).then_some(&body);
            warnings = field_validation::check_patched(mode, kind, &patched, strategic)?;
            field_validation::prune(kind, &mut patched);
            if let Some(m) = patched
                .pointer_mut("/metadata")
                .and_then(Value::as_object_mut)
            {
                // A patch that does not name a resourceVersion is unconditional.
                if body.pointer("/metadata/resourceVersion").is_none()
                    && ptype != patch::PatchType::Json
                {
                    m.remove("resourceVersion");
                }
            }
            apply_update(kind, sub, cur, patched, Some(&w))
        })?;
    let mut resp = json_response(200, &updated);
    field_validation::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

fn delete_options(req: &Req) -> Result<(DeleteOptions, bool), ApiError> {
    let mut opts = DeleteOptions {
        dry_run: req.dry_run(),
        ..Default::default()
    };
    let body: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .map(String::from)
        .or_else(|| req.param("propagationPolicy").map(String::from));
    opts.propagation = match policy.as_deref() {
        None | Some("") => None,
        Some("Orphan") => Some(Propagation::Orphan),
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some(other) => {
            return Err(ApiError::invalid(
                Kind::Job,
                "",
                vec![Cause::not_supported(
                    "propagationPolicy",
                    &json!(other),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            )
            .with_status_kind("DeleteOptions"))
        }
    };
    let orphan = body["orphanDependents"]
        .as_bool()
        .or_else(|| req.param("orphanDependents").map(|v| v == "true"));
    if opts.propagation.is_none() {
        opts.propagation = orphan.map(|o| {
            if o {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        });
    }
    opts.grace_period_seconds = body["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| req.param("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    if body["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|v| v == "All"))
    {
        opts.dry_run = true;
    }
    opts.preconditions_uid = body
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(String::from);
    let defaulted = opts.propagation.is_none();
    Ok((opts, defaulted))
}

impl ApiError {
    /// Replaces `details.kind` (for errors about request options rather than the object).
    fn with_status_kind(mut self, kind: &str) -> ApiError {
        if let Some(d) = self.details.as_mut() {
            d["kind"] = json!(kind);
            d["group"] = json!("meta.k8s.io");
        }
        self
    }
}

/// `DELETE` of one object: Jobs answer a Success Status when removed at once, Pods the Pod;
/// an object kept by finalizers or a grace period is answered as it now is.
///
/// # Errors
/// 404, 409 (precondition), 403 (built-in namespaces).
pub fn delete(cluster: &Arc<Cluster>, req: &Req, t: &Target) -> Result<Response<Body>, ApiError> {
    let (opts, defaulted) = delete_options(req)?;
    let out = cluster
        .store
        .delete_ex(t.kind, ns_of(t), name_of(t), &opts)?;
    let mut resp = if out.removed && !matches!(t.kind, Kind::Pod | Kind::Namespace) {
        let mut details = Map::new();
        details.insert("name".into(), json!(name_of(t)));
        if !t.kind.group().is_empty() {
            details.insert("group".into(), json!(t.kind.group()));
        }
        details.insert("kind".into(), json!(t.kind.plural()));
        details.insert("uid".into(), json!(meta_str(&out.object, "uid")));
        json_response(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        )
    } else {
        json_response(200, &out.object)
    };
    if t.kind == Kind::Job && defaulted {
        resp.headers_mut()
            .insert("warning", header::HeaderValue::from_static(ORPHAN_WARNING));
    }
    Ok(resp)
}

/// `DELETE` of a collection (by label/field selector); answers the list of deleted objects.
///
/// # Errors
/// 400 for bad selectors or options.
pub fn delete_collection(
    cluster: &Arc<Cluster>,
    req: &Req,
    t: &Target,
) -> Result<Response<Body>, ApiError> {
    let (opts, _) = delete_options(req)?;
    let sel = Selection::from_req(req, t.kind)?;
    let (items, _) = cluster.store.list_arc(t.kind, t.ns.as_deref());
    let mut deleted = Vec::new();
    for o in items.iter().filter(|o| sel.matches(o)) {
        if let Ok(out) =
            cluster
                .store
                .delete_ex(t.kind, meta_str(o, "namespace"), meta_str(o, "name"), &opts)
        {
            deleted.push(out.object);
        }
    }
    let rv = cluster.store.current_rv();
    let items: Vec<ListItem> = deleted.iter().map(ListItem).collect();
    Ok(json_response(
        200,
        &json!({"kind": t.kind.list_kind(), "apiVersion": t.kind.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_times_a_status_write_left_out_are_null_as_go_writes_them() {
        let mut status = json!({"conditions": [
            {"type": "A", "status": "True"},
            {"type": "B", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ]});
        null_condition_times(Kind::Job, &mut status);
        assert_eq!(
            status["conditions"],
            json!([
                {"type": "A", "status": "True", "lastProbeTime": null, "lastTransitionTime": null},
                {"type": "B", "status": "True", "lastProbeTime": null,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ])
        );
        let mut other = json!({"conditions": [{"type": "A"}]});
        null_condition_times(Kind::Namespace, &mut other);
        assert_eq!(other, json!({"conditions": [{"type": "A"}]}));
    }
}
