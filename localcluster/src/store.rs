//! The object store: every API object as JSON, one global resourceVersion counter, watch fan-out
//! (broadcast + a bounded history for `resourceVersion=N` watches) and the delete semantics
//! (finalizers, propagation policies, pod grace) shared by the HTTP API, the GC and the controller.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::error::ApiError;
pub use crate::kind::Kind;
pub use crate::meta::{generate_name, is_deleting, now_rfc3339};

/// What happened to an object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated (including status, finalizers and deletionTimestamp).
    Modified,
    /// Removed; the object is its last state with a new resourceVersion.
    Deleted,
}

/// One committed write, as broadcast to watchers.
#[derive(Clone, Debug)]
pub struct Change {
    /// The kind of the object.
    pub kind: Kind,
    /// What happened.
    pub event: EventType,
    /// The object after the write (for `Deleted`: its last state with the new resourceVersion).
    pub object: Arc<Value>,
    /// The resourceVersion of this write.
    pub rv: u64,
    /// The object before the write (`None` for `Added`), so watchers can tell selector enter/leave.
    pub prev: Option<Arc<Value>>,
}

/// How dependents are treated when their owner is deleted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Propagation {
    /// Strip the ownerReference from dependents (finalizer `orphan` until done).
    Orphan,
    /// Remove the owner now; the GC removes dependents afterwards.
    Background,
    /// Keep the owner (finalizer `foregroundDeletion`) until its dependents are gone.
    Foreground,
}

/// Options of an API-level delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy`; `None` = the kind's default (Orphan for Jobs, Background otherwise).
    pub propagation: Option<Propagation>,
    /// `gracePeriodSeconds` (pods).
    pub grace_period_seconds: Option<i64>,
    /// `dryRun=All`: answer as if deleted, change nothing.
    pub dry_run: bool,
    /// `preconditions.uid`: 409 Conflict when the object's uid differs.
    pub preconditions_uid: Option<String>,
}

/// The result of [`Store::delete_ex`].
#[derive(Clone, Debug)]
pub struct DeleteOutcome {
    /// The object as last stored (removed) or as now stored (deletion pending).
    pub object: Value,
    /// Whether the object is gone from the store.
    pub removed: bool,
}

type Key = (String, String);

/// Capacity of the broadcast channel to watchers; a watcher that lags further re-lists.
const BROADCAST_CAPACITY: usize = 1 << 16;
/// Number of past changes kept for `resourceVersion=N` watches.
const HISTORY_CAPACITY: usize = 50_000;

struct Inner {
    rv: u64,
    objects: [BTreeMap<Key, Arc<Value>>; 6],
    by_uid: HashMap<String, (Kind, Key)>,
    /// owner uid → dependents (by their ownerReferences), whether or not the owner still exists.
    dependents: HashMap<String, HashSet<(Kind, Key)>>,
    history: VecDeque<Change>,
    /// The highest resourceVersion dropped from `history` (0 = nothing dropped yet).
    evicted_upto: u64,
}

/// All API objects. One write holds the lock once; watchers are fed through a broadcast channel.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Change>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// `metadata.<field>` as a string, or `""`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name` and `metadata.generateName` (either may be empty, not both).
///
/// # Errors
/// 422 Invalid `metadata.name: Required value` when both are empty.
pub(crate) fn name_and_prefix(
    kind: Kind,
    meta: &serde_json::Map<String, Value>,
) -> Result<(String, String), ApiError> {
    let text = |k: &str| {
        meta.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (name, prefix) = (text("name"), text("generateName"));
    if name.is_empty() && prefix.is_empty() {
        return Err(ApiError::invalid(
            kind,
            "",
            vec![crate::error::Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        ));
    }
    Ok((name, prefix))
}

fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let root = obj.as_object_mut().expect("object ensured above");
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("object ensured above")
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A scheduled pod that has not finished: the kubelet must stop it before it can be removed.
fn pod_is_active(kind: Kind, obj: &Value) -> bool {
    if kind != Kind::Pod {
        return false;
    }
    let scheduled = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    scheduled && matches!(phase, "Pending" | "Running")
}

impl Inner {
    fn map(&self, kind: Kind) -> &BTreeMap<Key, Arc<Value>> {
        &self.objects[kind.index()]
    }

    fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.map(kind).get(&(ns.to_string(), name.to_string()))
    }

    fn ns_key(kind: Kind, ns: &str) -> String {
        if kind.namespaced() {
            ns.to_string()
        } else {
            String::new()
        }
    }

    /// Writes (or, with `obj = None`, removes) one object and broadcasts the change.
    fn commit(
        &mut self,
        tx: &broadcast::Sender<Change>,
        kind: Kind,
        key: Key,
        mut obj: Value,
        event: EventType,
    ) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        metadata_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let obj = Arc::new(obj);
        let prev = match event {
            EventType::Deleted => self.objects[kind.index()].remove(&key),
            _ => self.objects[kind.index()].insert(key.clone(), obj.clone()),
        };
        // Keep the uid and owner indexes in step.
        let old_owners = prev.as_deref().map(owner_uids).unwrap_or_default();
        let new_owners = if event == EventType::Deleted {
            Vec::new()
        } else {
            owner_uids(&obj)
        };
        if old_owners != new_owners {
            for o in &old_owners {
                if let Some(set) = self.dependents.get_mut(o) {
                    set.remove(&(kind, key.clone()));
                    if set.is_empty() {
                        self.dependents.remove(o);
                    }
                }
            }
            for o in &new_owners {
                self.dependents
                    .entry(o.clone())
                    .or_default()
                    .insert((kind, key.clone()));
            }
        }
        let uid = meta_str(&obj, "uid").to_string();
        if !uid.is_empty() {
            if event == EventType::Deleted {
                self.by_uid.remove(&uid);
            } else if event == EventType::Added {
                self.by_uid.insert(uid, (kind, key));
            }
        }
        let change = Change {
            kind,
            event,
            object: obj.clone(),
            rv,
            prev,
        };
        if self.history.len() >= HISTORY_CAPACITY {
            if let Some(old) = self.history.pop_front() {
                self.evicted_upto = old.rv;
            }
        }
        self.history.push_back(change.clone());
        // No receivers is fine; send never blocks.
        let _ = tx.send(change);
        obj
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.dependents.get(uid).is_some_and(|s| !s.is_empty())
    }
}

impl Store {
    /// An empty store holding the `default` and `kube-system` namespaces.
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let store = Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: Default::default(),
                by_uid: HashMap::new(),
                dependents: HashMap::new(),
                history: VecDeque::new(),
                evicted_upto: 0,
            }),
            tx,
        };
        // The built-in namespaces, as a namespace create makes them (Active, with the label).
        for ns in ["default", "kube-system"] {
            let _ = store.create(
                Kind::Namespace,
                json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                       "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            );
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written object (commit is the only
        // mutation and does not panic), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// A copy of one object; `ns` is ignored for cluster-scoped kinds.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        self.get_arc(kind, ns, name).map(|v| (*v).clone())
    }

    /// One object, shared.
    pub fn get_arc(&self, kind: Kind, ns: &str, name: &str) -> Option<Arc<Value>> {
        let g = self.lock();
        g.get(kind, &Inner::ns_key(kind, ns), name).cloned()
    }

    /// The object with this uid, if it exists.
    pub fn get_by_uid(&self, uid: &str) -> Option<(Kind, Arc<Value>)> {
        let g = self.lock();
        let (kind, key) = g.by_uid.get(uid)?;
        g.map(*kind).get(key).map(|v| (*kind, v.clone()))
    }

    /// The objects whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(Kind, Arc<Value>)> {
        let g = self.lock();
        g.dependents
            .get(owner_uid)
            .map(|set| {
                set.iter()
                    .filter_map(|(k, key)| g.map(*k).get(key).map(|v| (*k, v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Copies of all objects of a kind (in one namespace, or all with `None`) and the current RV.
    pub fn list(&self, kind: Kind, ns: Option<&str>) -> (Vec<Value>, u64) {
        let (items, rv) = self.list_arc(kind, ns);
        (items.into_iter().map(|v| (*v).clone()).collect(), rv)
    }

    /// Like [`Store::list`] without copying the objects.
    pub fn list_arc(&self, kind: Kind, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let g = self.lock();
        (Self::collect(&g, kind, ns), g.rv)
    }

    fn collect(g: &Inner, kind: Kind, ns: Option<&str>) -> Vec<Arc<Value>> {
        let map = g.map(kind);
        match ns {
            Some(ns) if kind.namespaced() => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            _ => map.values().cloned().collect(),
        }
    }

    /// The objects of a kind as they were at `rv` (a list with `resourceVersionMatch=Exact`):
    /// today's, with every later change the history holds undone, newest first.
    ///
    /// # Errors
    /// 410 Expired when changes after `rv` were dropped from the history; 504 when `rv` is
    /// ahead of the store.
    pub fn list_at(
        &self,
        kind: Kind,
        ns: Option<&str>,
        rv: u64,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let g = self.lock();
        if rv > g.rv {
            return Err(ApiError::too_large_resource_version(rv, g.rv));
        }
        if rv < g.evicted_upto {
            return Err(ApiError::new(
                410,
                "Expired",
                "The resourceVersion for the provided list is too old.",
            ));
        }
        let key = |o: &Value| {
            (
                meta_str(o, "namespace").to_string(),
                meta_str(o, "name").to_string(),
            )
        };
        let mut state: BTreeMap<Key, Arc<Value>> = Self::collect(&g, kind, ns)
            .into_iter()
            .map(|o| (key(&o), o))
            .collect();
        let in_scope =
            |o: &Value| ns.is_none_or(|n| !kind.namespaced() || meta_str(o, "namespace") == n);
        for c in g.history.iter().rev().take_while(|c| c.rv > rv) {
            if c.kind != kind || !in_scope(&c.object) {
                continue;
            }
            match (&c.event, &c.prev) {
                (EventType::Added, _) | (_, None) => {
                    state.remove(&key(&c.object));
                }
                (_, Some(prev)) => {
                    state.insert(key(prev), prev.clone());
                }
            }
        }
        Ok(state.into_values().collect())
    }

    /// A consistent snapshot (objects + RV) and a receiver for every change after it.
    pub fn snapshot_and_subscribe(
        &self,
        kind: Kind,
        ns: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Change>) {
        let g = self.lock();
        let rx = self.tx.subscribe();
        (Self::collect(&g, kind, ns), g.rv, rx)
    }

    /// The changes after `rv` still in the history and a receiver for every later change.
    ///
    /// # Errors
    /// 410 Expired when changes after `rv` have already been dropped from the history.
    pub fn watch_from(
        &self,
        rv: u64,
    ) -> Result<(Vec<Change>, broadcast::Receiver<Change>), ApiError> {
        let g = self.lock();
        if rv < g.evicted_upto {
            let oldest = g.history.front().map_or(g.rv, |c| c.rv);
            return Err(ApiError::expired(rv, oldest));
        }
        let start = g.history.partition_point(|c| c.rv <= rv);
        let past = g.history.range(start..).cloned().collect();
        Ok((past, self.tx.subscribe()))
    }

    /// A receiver for every change from now on. Receivers that lag get `Lagged` and should re-list.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Creates an object as a controller would: kind/apiVersion, `generateName`, uid,
    /// creationTimestamp, resourceVersion, generation 1 (each unless already set); emits ADDED.
    /// No validation beyond name presence, uniqueness and an existing namespace.
    ///
    /// # Errors
    /// 409 AlreadyExists, 404 for a missing namespace, 422 without name or generateName.
    pub fn create(&self, kind: Kind, obj: Value) -> Result<Value, ApiError> {
        self.create_opts(kind, obj, false)
    }

    /// [`Store::create`], optionally as a dry run (everything filled in, nothing stored).
    ///
    /// # Errors
    /// As [`Store::create`].
    pub fn create_opts(
        &self,
        kind: Kind,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if let Some(root) = obj.as_object_mut() {
            root.entry("apiVersion")
                .or_insert_with(|| json!(kind.api_version()));
            root.entry("kind").or_insert_with(|| json!(kind.kind()));
        }
        let meta = metadata_mut(&mut obj);
        if !kind.namespaced() {
            meta.remove("namespace");
        }
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if meta
            .get("uid")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        if meta
            .get("creationTimestamp")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        }
        if kind.has_generation() {
            meta.insert("generation".into(), json!(1));
        }
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        let (given_name, prefix) = name_and_prefix(kind, meta)?;

        let mut g = self.lock();
        if kind.namespaced() && g.get(Kind::Namespace, "", &ns).is_none() {
            return Err(ApiError::not_found(Kind::Namespace, &ns));
        }
        let name = if given_name.is_empty() {
            let mut tries = 0;
            loop {
                let candidate = generate_name(&prefix);
                if g.get(kind, &ns, &candidate).is_none() {
                    break candidate;
                }
                tries += 1;
                if tries >= 8 {
                    return Err(ApiError::already_exists(kind, &candidate));
                }
            }
        } else {
            given_name
        };
        if g.get(kind, &ns, &name).is_some() {
            return Err(ApiError::already_exists(kind, &name));
        }
        metadata_mut(&mut obj).insert("name".into(), json!(name));
        if dry_run {
            return Ok(obj);
        }
        let stored = g.commit(&self.tx, kind, (ns, name), obj, EventType::Added);
        Ok((*stored).clone())
    }

    /// Atomic read-modify-write of one object: new resourceVersion, generation +1 when `spec`
    /// changed, MODIFIED event (none when `f` changed nothing). If afterwards the object has a
    /// deletionTimestamp and no finalizers it is removed (DELETED) — unless it is a scheduled
    /// Pod still Pending/Running, which the kubelet must stop first.
    ///
    /// # Errors
    /// 404 when the object does not exist; whatever `f` returns.
    pub fn update(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        self.update_opts(kind, ns, name, false, f)
    }

    /// [`Store::update`], optionally as a dry run.
    ///
    /// # Errors
    /// As [`Store::update`].
    pub fn update_opts(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        dry_run: bool,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Value, ApiError> {
        let ns = Inner::ns_key(kind, ns);
        let mut g = self.lock();
        let cur = g
            .get(kind, &ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        let mut obj = (*cur).clone();
        f(&mut obj)?;
        // Identity fields are the server's.
        {
            let meta = metadata_mut(&mut obj);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "resourceVersion",
            ] {
                match cur.pointer(&format!("/metadata/{field}")) {
                    Some(v) => {
                        meta.insert(field.into(), v.clone());
                    }
                    None => {
                        meta.remove(field);
                    }
                }
            }
        }
        if obj == *cur {
            return Ok(obj);
        }
        if kind.has_generation() && spec_changed(kind, &cur, &obj) {
            let gen = cur
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            metadata_mut(&mut obj).insert("generation".into(), json!(gen));
        }
        if dry_run {
            return Ok(obj);
        }
        let remove = is_deleting(&obj) && finalizers(&obj).is_empty() && !pod_is_active(kind, &obj);
        let event = if remove {
            EventType::Deleted
        } else {
            EventType::Modified
        };
        let stored = g.commit(&self.tx, kind, (ns, name.to_string()), obj, event);
        Ok((*stored).clone())
    }

    /// The API-level delete (HTTP handler, GC, controller); returns the object (see [`Store::delete_ex`]).
    ///
    /// # Errors
    /// As [`Store::delete_ex`].
    pub fn delete(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        self.delete_ex(kind, ns, name, opts).map(|o| o.object)
    }

    /// Deletes with finalizers, propagation and pod grace: removes the object at once when
    /// nothing holds it, else sets `deletionTimestamp` (+ `foregroundDeletion`/`orphan` finalizer
    /// when it has dependents, + `deletionGracePeriodSeconds` for a running pod).
    ///
    /// # Errors
    /// 404 when missing, 409 when `preconditions_uid` differs, 403 for the built-in namespaces.
    pub fn delete_ex(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let ns = Inner::ns_key(kind, ns);
        if kind == Kind::Namespace && (name == "default" || name == "kube-system") {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let mut g = self.lock();
        let cur = g
            .get(kind, &ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        let uid = meta_str(&cur, "uid").to_string();
        check_uid_precondition(kind, name, &uid, opts)?;
        let fins = finalizers_on_delete(&g, kind, &cur, &uid, opts);
        let active_pod = pod_is_active(kind, &cur);
        let key = (ns, name.to_string());
        if fins.is_empty() && !active_pod {
            // What kube-apiserver answers (and its DELETED event carries): a namespace
            // Terminating, a pod marked deleted with no grace; other kinds as they were.
            let last = match kind {
                Kind::Namespace => terminating_namespace(&cur),
                Kind::Pod => marked_deleting(kind, &cur, Vec::new(), false, opts),
                _ => (*cur).clone(),
            };
            return Ok(self.remove_now(&mut g, kind, key, last, opts.dry_run));
        }
        let obj = marked_deleting(kind, &cur, fins, active_pod, opts);
        if obj == *cur || opts.dry_run {
            return Ok(DeleteOutcome {
                object: obj,
                removed: false,
            });
        }
        let stored = g.commit(&self.tx, kind, key, obj, EventType::Modified);
        Ok(DeleteOutcome {
            object: (*stored).clone(),
            removed: false,
        })
    }

    /// Removes an object nothing holds (a namespace with its content, each with its own
    /// DELETED event); a dry run only says it would.
    fn remove_now(
        &self,
        g: &mut Inner,
        kind: Kind,
        key: Key,
        obj: Value,
        dry_run: bool,
    ) -> DeleteOutcome {
        if dry_run {
            return DeleteOutcome {
                object: obj,
                removed: true,
            };
        }
        if kind == Kind::Namespace {
            self.remove_namespace_content(g, &key.1);
        }
        let last = g.commit(&self.tx, kind, key, obj, EventType::Deleted);
        DeleteOutcome {
            object: (*last).clone(),
            removed: true,
        }
    }

    fn remove_namespace_content(&self, g: &mut Inner, name: &str) {
        for k in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
            let keys: Vec<Key> = g
                .map(k)
                .range((name.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == name)
                .map(|(key, _)| key.clone())
                .collect();
            for key in keys {
                if let Some(o) = g.map(k).get(&key).cloned() {
                    g.commit(&self.tx, k, key, (*o).clone(), EventType::Deleted);
                }
            }
        }
    }
}

/// 409 when the delete's UID precondition names another object.
fn check_uid_precondition(
    kind: Kind,
    name: &str,
    uid: &str,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    match &opts.preconditions_uid {
        Some(want) if want != uid => Err(ApiError::conflict_with(
            kind,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        )),
        _ => Ok(()),
    }
}

/// The finalizers the object keeps on delete: its own, plus `orphan`/`foregroundDeletion`
/// when the propagation policy asks for it and it has dependents (Jobs orphan by default).
fn finalizers_on_delete(
    g: &Inner,
    kind: Kind,
    obj: &Value,
    uid: &str,
    opts: &DeleteOptions,
) -> Vec<String> {
    let policy = opts.propagation.unwrap_or(if kind == Kind::Job {
        Propagation::Orphan
    } else {
        Propagation::Background
    });
    let mut fins = finalizers(obj);
    let extra = match policy {
        Propagation::Orphan => Some("orphan"),
        Propagation::Foreground => Some("foregroundDeletion"),
        Propagation::Background => None,
    };
    // Foreground and orphan always hold the object until the collector has seen to its
    // dependents (kube-apiserver answers both with the finalizer, dependents or not).
    let always = matches!(policy, Propagation::Foreground | Propagation::Orphan);
    if let Some(f) = extra {
        if (always || g.has_dependents(uid)) && !fins.iter().any(|x| x == f) {
            fins.push(f.to_string());
        }
    }
    fins
}

/// The object with its deletion pending: `deletionTimestamp`, the grace period (a running
/// pod's from the options or its spec, else 0; a pod's only ever shortens) and `fins`.
fn marked_deleting(
    kind: Kind,
    cur: &Value,
    fins: Vec<String>,
    active_pod: bool,
    opts: &DeleteOptions,
) -> Value {
    let mut obj = cur.clone();
    let was_deleting = is_deleting(&obj);
    let meta = metadata_mut(&mut obj);
    if !was_deleting {
        meta.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        // kube-apiserver's BeforeDelete / markAsDeleting bump a set generation once.
        if let Some(g) = meta
            .get("generation")
            .and_then(Value::as_i64)
            .filter(|g| *g > 0)
        {
            meta.insert("generation".into(), json!(g + 1));
        }
    }
    if kind == Kind::Pod {
        let grace = if active_pod {
            opts.grace_period_seconds
                .or_else(|| {
                    cur.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30)
                .max(0)
        } else {
            0
        };
        let shorter = meta
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_none_or(|old| grace < old);
        if shorter {
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
    } else if !was_deleting {
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if !fins.is_empty() {
        meta.insert("finalizers".into(), json!(fins));
    }
    obj
}

/// A namespace as its DELETE answers it: `deletionTimestamp` set and `Terminating` (the
/// emulator's namespace controller then empties and removes it at once).
fn terminating_namespace(cur: &Value) -> Value {
    let mut obj = cur.clone();
    metadata_mut(&mut obj).insert("deletionTimestamp".into(), json!(now_rfc3339()));
    if !obj["status"].is_object() {
        obj["status"] = json!({});
    }
    obj["status"]["phase"] = json!("Terminating");
    obj
}

/// Whether an update changes the spec in a way that bumps `metadata.generation`: binding a
/// pod to a node (`spec.nodeName`, the `pods/binding` subresource) does not.
fn spec_changed(kind: Kind, cur: &Value, new: &Value) -> bool {
    let (a, b) = (cur.get("spec"), new.get("spec"));
    if kind != Kind::Pod || a == b {
        return a != b;
    }
    let without_node = |s: Option<&Value>| {
        let mut s = s.cloned().unwrap_or(Value::Null);
        if let Some(m) = s.as_object_mut() {
            m.remove("nodeName");
        }
        s
    };
    without_node(a) != without_node(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_use_the_kubernetes_alphabet() {
        let n = generate_name(&"x".repeat(70));
        assert_eq!(n.len(), 63);
        assert!(n[58..]
            .bytes()
            .all(|b| crate::meta::NAME_ALPHABET.contains(&b)));
    }

    #[test]
    fn a_list_at_an_exact_resource_version_undoes_the_later_changes() {
        let s = Store::new();
        let base = s.current_rv();
        let job =
            |name: &str| json!({"metadata": {"name": name, "namespace": "default"}, "spec": {}});
        s.create(Kind::Job, job("a")).unwrap();
        s.update(Kind::Job, "default", "a", |o| {
            o["spec"]["x"] = json!(1);
            Ok(())
        })
        .unwrap();
        s.create(Kind::Job, job("b")).unwrap();
        let background = DeleteOptions {
            propagation: Some(Propagation::Background),
            ..DeleteOptions::default()
        };
        s.delete_ex(Kind::Job, "default", "a", &background).unwrap();
        let names_at = |rv: u64| -> Vec<(String, Value)> {
            s.list_at(Kind::Job, Some("default"), rv)
                .unwrap()
                .iter()
                .map(|o| (meta_str(o, "name").to_string(), o["spec"].clone()))
                .collect()
        };
        assert_eq!(names_at(base), []);
        assert_eq!(names_at(base + 1), [("a".to_string(), json!({}))]);
        assert_eq!(names_at(base + 2), [("a".to_string(), json!({"x": 1}))]);
        assert_eq!(names_at(base + 3).len(), 2);
        assert_eq!(names_at(base + 4), [("b".to_string(), json!({}))]);
        let ahead = s.list_at(Kind::Job, None, base + 99).unwrap_err();
        assert_eq!((ahead.code, ahead.reason.as_str()), (504, "Timeout"));
    }

    #[test]
    fn create_update_delete_bump_the_global_rv() {
        let s = Store::new();
        let base = s.current_rv();
        let j = s
            .create(
                Kind::Job,
                json!({"metadata": {"name": "a", "namespace": "default"}, "spec": {}}),
            )
            .unwrap();
        assert_eq!(meta_str(&j, "resourceVersion"), (base + 1).to_string());
        let j = s
            .update(Kind::Job, "default", "a", |o| {
                o["spec"]["x"] = json!(1);
                Ok(())
            })
            .unwrap();
        assert_eq!(j["metadata"]["generation"], json!(2));
        let same = s.update(Kind::Job, "default", "a", |_| Ok(())).unwrap();
        assert_eq!(meta_str(&same, "resourceVersion"), (base + 2).to_string());
        // Background: removed at once (a Job's default, Orphan, is held by its finalizer).
        let background = DeleteOptions {
            propagation: Some(Propagation::Background),
            ..DeleteOptions::default()
        };
        let out = s.delete_ex(Kind::Job, "default", "a", &background).unwrap();
        assert!(out.removed);
        assert_eq!(
            meta_str(&out.object, "resourceVersion"),
            (base + 3).to_string()
        );
        assert!(s.get(Kind::Job, "default", "a").is_none());
    }

    #[test]
    fn finalizers_hold_an_object_until_removed() {
        let s = Store::new();
        s.create(
            Kind::ConfigMap,
            json!({"metadata": {"name": "c", "namespace": "default", "finalizers": ["x"]}}),
        )
        .unwrap();
        let out = s
            .delete_ex(Kind::ConfigMap, "default", "c", &DeleteOptions::default())
            .unwrap();
        assert!(!out.removed);
        assert!(is_deleting(&out.object));
        s.update(Kind::ConfigMap, "default", "c", |o| {
            o["metadata"]["finalizers"] = json!([]);
            Ok(())
        })
        .unwrap();
        assert!(s.get(Kind::ConfigMap, "default", "c").is_none());
    }

    #[test]
    fn missing_namespace_is_not_found() {
        let s = Store::new();
        let err = s
            .create(
                Kind::Pod,
                json!({"metadata": {"name": "p", "namespace": "nope"}}),
            )
            .unwrap_err();
        assert_eq!(err.code, 404);
        assert_eq!(err.message, "namespaces \"nope\" not found");
    }

    #[test]
    fn watch_from_replays_history() {
        let s = Store::new();
        let rv = s.current_rv();
        s.create(
            Kind::Secret,
            json!({"metadata": {"name": "s", "namespace": "default"}}),
        )
        .unwrap();
        let (past, _rx) = s.watch_from(rv).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].event, EventType::Added);
    }
}
