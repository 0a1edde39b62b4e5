//! Field sets, as structured-merge-diff's `fieldpath.Set`: the fields of an object a manager
//! owns, their `FieldsV1` form in `metadata.managedFields`, and the paths a conflict names
//! (`.spec.template.spec.containers[name="flow"].image`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a path: a field, a keyed list item, a set item or (atomic lists only) an index.
/// The order of the variants is structured-merge-diff's order of path elements.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pe {
    /// `f:name`, printed `.name`.
    Field(String),
    /// `k:{"name":"flow"}`: the item's key fields as compact JSON, keys sorted.
    Key(String),
    /// `v:"value"`: an item of a set list, as compact JSON.
    Value(String),
    /// `i:0`.
    Index(usize),
}

impl Pe {
    /// The element of a keyed list item, from its key fields (sorted by name).
    pub fn key(fields: &BTreeMap<String, Value>) -> Pe {
        let m: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Pe::Key(Value::Object(m).to_string())
    }

    /// The element of a set item.
    pub fn value(v: &Value) -> Pe {
        Pe::Value(v.to_string())
    }

    fn fields_v1_key(&self) -> String {
        match self {
            Pe::Field(n) => format!("f:{n}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn from_fields_v1_key(s: &str) -> Option<Pe> {
        let (tag, rest) = s.split_once(':')?;
        match tag {
            "f" => Some(Pe::Field(rest.to_string())),
            "k" => serde_json::from_str::<Value>(rest)
                .ok()
                .filter(Value::is_object)
                .map(|v| Pe::Key(v.to_string())),
            "v" => serde_json::from_str::<Value>(rest)
                .ok()
                .map(|v| Pe::value(&v)),
            "i" => rest.parse().ok().map(Pe::Index),
            _ => None,
        }
    }
}

impl std::fmt::Display for Pe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pe::Field(n) => write!(f, ".{n}"),
            Pe::Key(k) => {
                let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Pe::Value(v) => write!(f, "[={v}]"),
            Pe::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path's printed form, as in conflict messages.
pub fn path_string(path: &[Pe]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of paths: the elements that are members here, and the sets below each child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds `path` (the empty path adds nothing).
    pub fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `pe` is a member here.
    pub fn has_member(&self, pe: &Pe) -> bool {
        self.members.contains(pe)
    }

    /// The set below `pe`, if any.
    pub fn child(&self, pe: &Pe) -> Option<&Set> {
        self.children.get(pe)
    }

    /// Whether `pe` is a member or has a non-empty set below it.
    pub fn touches(&self, pe: &Pe) -> bool {
        self.has_member(pe) || self.child(pe).is_some_and(|c| !c.is_empty())
    }

    /// The set without `pe` and everything below it.
    pub fn without(&self, pe: &Pe) -> Set {
        let mut out = self.clone();
        out.members.remove(pe);
        out.children.remove(pe);
        out
    }

    /// Every path of `self` or `other`.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// The paths of `self` not in `other` (a member removed keeps its children).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(pe, c)| match other.children.get(pe) {
                Some(o) => (pe.clone(), c.difference(o)),
                None => (pe.clone(), c.clone()),
            })
            .filter(|(_, c)| !c.is_empty())
            .collect();
        Set { members, children }
    }

    /// The paths in both.
    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, c)| {
                other
                    .children
                    .get(pe)
                    .map(|o| (pe.clone(), c.intersection(o)))
            })
            .filter(|(_, c)| !c.is_empty())
            .collect();
        Set { members, children }
    }

    /// Every path of the set, in order (a member before the paths below it).
    pub fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            prefix.push(pe.clone());
            if self.members.contains(pe) {
                out.push(prefix.clone());
            }
            if let Some(c) = self.children.get(pe) {
                c.collect_paths(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON of the set (`{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}`).
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_contents(false))
    }

    fn fields_v1_contents(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for pe in keys {
            let member = self.members.contains(pe);
            let inner = match self.children.get(pe) {
                Some(c) if !c.is_empty() => c.fields_v1_contents(member),
                _ if member => Map::new(),
                _ => continue,
            };
            out.insert(pe.fields_v1_key(), Value::Object(inner));
        }
        out
    }

    /// Reads a `FieldsV1` JSON object; None when it is not one.
    pub fn from_fields_v1(v: &Value) -> Option<Set> {
        let mut set = Set::default();
        for (k, inner) in v.as_object()? {
            let pe = Pe::from_fields_v1_key(k)?;
            let inner = inner.as_object()?;
            if inner.is_empty() {
                set.members.insert(pe);
                continue;
            }
            let mut child = Set::default();
            for (ik, iv) in inner {
                if ik == "." {
                    set.members.insert(pe.clone());
                    continue;
                }
                let sub = Set::from_fields_v1(&Value::Object(
                    std::iter::once((ik.clone(), iv.clone())).collect(),
                ))?;
                child = child.union(&sub);
            }
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> Pe {
        Pe::Field(n.into())
    }

    #[test]
    fn fields_v1_round_trips_with_self_markers() {
        let doc = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"flow\"}": {".": {}, "f:image": {}, "f:name": {}}}}});
        let set = Set::from_fields_v1(&doc).unwrap();
        assert!(set.child(&f("metadata")).unwrap().has_member(&f("labels")));
        assert_eq!(set.to_fields_v1(), doc);
    }

    #[test]
    fn difference_keeps_children_and_paths_print_as_the_api_server_does() {
        let mut a = Set::default();
        let key = Pe::key(&[("name".to_string(), json!("flow"))].into_iter().collect());
        a.insert(&[f("spec"), f("containers"), key.clone()]);
        a.insert(&[f("spec"), f("containers"), key.clone(), f("image")]);
        let mut b = Set::default();
        b.insert(&[f("spec"), f("containers"), key.clone()]);
        let d = a.difference(&b);
        let paths: Vec<String> = d.paths().iter().map(|p| path_string(p)).collect();
        assert_eq!(paths, [r#".spec.containers[name="flow"].image"#]);
        assert_eq!(a.intersection(&b).paths().len(), 1);
        assert!(a.union(&b).difference(&a).is_empty());
        let set_item = [f("metadata"), f("finalizers"), Pe::value(&json!("x"))];
        assert_eq!(path_string(&set_item), r#".metadata.finalizers[="x"]"#);
    }
}
