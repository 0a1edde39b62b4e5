//! Field managers, as kube-apiserver's fieldmanager: `metadata.managedFields` kept on every
//! create, update and patch (operation `Update`), and server-side apply (operation `Apply`):
//! the configuration merged into the live object, the fields it no longer names removed when
//! no other manager owns them, and conflicts with other managers refused unless forced.

pub mod schema;
pub mod set;
pub mod walk;

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::kind::Kind;
use schema::Schema;
use set::{path_string, Pe, Set};

/// Who writes: the manager and, for `/status`, the subresource.
#[derive(Clone, Debug)]
pub struct Writer {
    /// `fieldManager`, or the User-Agent's product for non-apply requests.
    pub manager: String,
    /// `status` for writes through `/status`.
    pub subresource: Option<String>,
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    apply: bool,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: Set,
}

impl Entry {
    fn same_owner(&self, w: &Writer, apply: bool) -> bool {
        self.manager == w.manager && self.apply == apply && self.subresource == w.subresource
    }

    /// How a conflict message names the manager (kube-apiserver's `printManager`).
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if !self.apply {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert(
            "operation".into(),
            json!(if self.apply { "Apply" } else { "Update" }),
        );
        m.insert("apiVersion".into(), json!(self.api_version));
        if !self.time.is_empty() {
            m.insert("time".into(), json!(self.time));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(sub) = &self.subresource {
            m.insert("subresource".into(), json!(sub));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        Some(Entry {
            manager: v.get("manager")?.as_str()?.to_string(),
            apply: v.get("operation")?.as_str()? == "Apply",
            api_version: v.get("apiVersion")?.as_str()?.to_string(),
            time: v
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            subresource: v
                .get("subresource")
                .and_then(Value::as_str)
                .map(String::from),
            set: Set::from_fields_v1(v.get("fieldsV1")?)?,
        })
    }
}

fn read(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Writes the entries, sorted as kube-apiserver sorts them (Apply first, then by time,
/// manager, apiVersion, subresource); none left removes the field.
fn write(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            !a.apply,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                !b.apply,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert(
                "managedFields".into(),
                Value::Array(entries.iter().map(Entry::to_json).collect()),
            );
        }
    }
}

/// The paths no manager owns (kube-apiserver's stripMeta), taken out of the writer's set.
fn strip_meta(set: &Set) -> Set {
    let mut strip = Set::default();
    let f = |n: &str| Pe::Field(n.to_string());
    for top in ["apiVersion", "kind", "metadata"] {
        strip.insert(&[f(top)]);
    }
    for field in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        strip.insert(&[f("metadata"), f(field)]);
    }
    set.difference(&strip)
}

/// What a write cannot change (the strategy's reset fields): the status through the main
/// resource, the spec through `/status`.
fn reset_field(subresource: Option<&str>) -> Pe {
    Pe::Field(
        if subresource == Some("status") {
            "spec"
        } else {
            "status"
        }
        .into(),
    )
}

/// An object as compared: without its managedFields.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// What changed from `old` to `new`, outside the reset fields.
fn changes(sc: &Schema, old: &Value, new: &Value, sub: Option<&str>) -> walk::Comparison {
    let reset = reset_field(sub);
    let mut c = walk::compare(sc, &comparable(old), &comparable(new));
    for s in [&mut c.added, &mut c.modified, &mut c.removed] {
        *s = s.without(&reset);
    }
    c
}

fn api_version(kind: Kind) -> &'static str {
    match kind {
        Kind::Job => "batch/v1",
        _ => "v1",
    }
}

/// Records a create (`old` None) or an update by `w` in `new`'s managedFields: the fields it
/// added or changed become its own, and leave every other manager.
pub fn record_update(kind: Kind, old: Option<&Value>, new: &mut Value, w: &Writer) {
    let Some(sc) = Schema::of(kind) else { return };
    let sub = w.subresource.as_deref();
    let empty = json!({});
    let c = changes(&sc, old.unwrap_or(&empty), new, sub);
    // managedFields the request itself carries replace the live ones (how clients such as
    // kubectl's client-side-apply upgrade rename managers), except through a subresource.
    let given = if sub.is_none() { read(new) } else { Vec::new() };
    let mut entries = if given.is_empty() {
        old.map(read).unwrap_or_default()
    } else {
        given
    };
    let changed = strip_meta(&c.added.union(&c.modified));
    for e in entries.iter_mut() {
        e.set = e.set.difference(&c.removed);
        if !e.same_owner(w, false) {
            e.set = e.set.difference(&changed);
        }
    }
    if !changed.is_empty() {
        let now = crate::meta::now_rfc3339();
        match entries.iter_mut().find(|e| e.same_owner(w, false)) {
            Some(e) => {
                e.set = e.set.union(&changed);
                e.time = now;
            }
            None => entries.push(Entry {
                manager: w.manager.clone(),
                apply: false,
                api_version: api_version(kind).into(),
                time: now,
                subresource: w.subresource.clone(),
                set: changed,
            }),
        }
    }
    write(new, entries);
}

/// Server-side apply of `config` by `w` onto `live` (None: the object is new). Returns the
/// object to store, with its managedFields.
///
/// # Errors
/// 409 `Apply failed with N conflict(s): …` when another manager owns a field the
/// configuration changes, unless `force`.
pub fn apply(
    kind: Kind,
    live: Option<&Value>,
    config: &Value,
    w: &Writer,
    force: bool,
) -> Result<Value, ApiError> {
    let Some(sc) = Schema::of(kind) else {
        return Err(ApiError::internal("no schema for server-side apply"));
    };
    if config.pointer("/metadata/managedFields").is_some() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let sub = w.subresource.as_deref();
    let mut entries = live.map(read).unwrap_or_default();
    let previous = entries
        .iter()
        .position(|e| e.same_owner(w, true))
        .map(|i| entries.remove(i));
    let last = previous.as_ref().map(|e| e.set.clone()).unwrap_or_default();
    let applied = strip_meta(&walk::field_set(&sc, config)).without(&reset_field(sub));
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    let mut merged = walk::merge(&sc, live_v, config);
    let owned_by_all = entries
        .iter()
        .fold(applied.clone(), |acc, e| acc.union(&e.set));
    walk::remove(&sc, &mut merged, &last.difference(&applied), &owned_by_all);
    let c = changes(&sc, live_v, &merged, sub);
    let changed = c.added.union(&c.modified);
    let mut conflicts: Vec<(&str, String, Set)> = entries
        .iter()
        .map(|e| {
            (
                e.manager.as_str(),
                e.printed(),
                e.set.intersection(&changed),
            )
        })
        .filter(|(_, _, s)| !s.is_empty())
        .collect();
    conflicts.sort_by(|a, b| a.0.cmp(b.0));
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    for e in &mut entries {
        e.set = e.set.difference(&changed).difference(&c.removed);
    }
    // A no-op apply keeps the applier's time (a new applier then has none), as kube-apiserver.
    let unchanged = live.is_some() && comparable(live_v) == comparable(&merged);
    let time = match (unchanged, previous) {
        (true, Some(p)) => p.time,
        (true, None) => String::new(),
        (false, _) => crate::meta::now_rfc3339(),
    };
    entries.push(Entry {
        manager: w.manager.clone(),
        apply: true,
        api_version: api_version(kind).into(),
        time,
        subresource: w.subresource.clone(),
        set: applied,
    });
    write(&mut merged, entries);
    Ok(merged)
}

/// kube-apiserver's 409 for apply conflicts, its message and one cause per field.
fn conflict_error(conflicts: &[(&str, String, Set)]) -> ApiError {
    let mut causes = Vec::new();
    let mut lines = Vec::new();
    for (_, manager, set) in conflicts {
        lines.push(format!("conflicts with {manager}:"));
        for p in set.paths() {
            let field = path_string(&p);
            lines.push(format!("- {field}"));
            causes.push(json!({"reason": "FieldManagerConflict",
                "message": format!("conflict with {manager}"), "field": field}));
        }
    }
    let message = if causes.len() == 1 {
        format!(
            "Apply failed with 1 conflict: {}: {}",
            causes[0]["message"].as_str().unwrap_or(""),
            causes[0]["field"].as_str().unwrap_or("")
        )
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            causes.len(),
            lines.join("\n")
        )
    };
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(Box::new(json!({ "causes": causes })));
    e
}

#[cfg(test)]
mod tests;
