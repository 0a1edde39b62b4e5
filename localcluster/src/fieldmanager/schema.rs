//! The shapes server-side apply merges by, read from the real API server's OpenAPI v3 schemas
//! (the documents `openapi` serves): structs and maps, granular or atomic
//! (`x-kubernetes-map-type`), and lists that are atomic, sets or maps keyed by fields
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`), as kube-openapi's schemaconv
//! reads them for structured-merge-diff.

use std::collections::BTreeMap;

use serde_json::Value;

use super::set::Pe;
use crate::api::field_validation;
use crate::kind::Kind;

/// A kind's schemas and the root schema of its objects.
#[derive(Clone, Copy)]
pub struct Schema {
    schemas: &'static Value,
    root: &'static Value,
}

/// How a node merges.
#[derive(Clone, Copy)]
pub enum Ty {
    /// A scalar, or anything merged whole (atomic structs, maps and lists, free-form values).
    Leaf,
    /// An object with declared fields.
    Struct(&'static Value),
    /// An object of any keys, each of this schema (None: free-form values).
    Map(Option<&'static Value>),
    /// A set of scalars.
    Set,
    /// A list of objects keyed by these fields.
    Keyed(&'static Value, &'static [Value]),
}

impl Schema {
    /// The schema of `kind`'s objects, when the documents are at hand.
    pub fn of(kind: Kind) -> Option<Schema> {
        let (schemas, root) = field_validation::root_schema(kind)?;
        Some(Schema { schemas, root })
    }

    /// How the root of an object merges.
    pub fn root_ty(&self) -> Ty {
        self.ty(Some(self.root))
    }

    /// How `node` merges (None: not in the schema, so merged whole).
    pub fn ty(&self, node: Option<&'static Value>) -> Ty {
        let Some(node) = node else {
            return Ty::Leaf;
        };
        let n = field_validation::resolve(self.schemas, node);
        if n.get("x-kubernetes-int-or-string").is_some()
            || n.get("x-kubernetes-preserve-unknown-fields").is_some()
        {
            return Ty::Leaf;
        }
        let atomic_map = n.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
        match n.get("type").and_then(Value::as_str) {
            Some("array") => list_ty(n),
            Some("object") | None if !atomic_map => {
                if n.get("properties").is_some_and(Value::is_object) {
                    Ty::Struct(n)
                } else {
                    match n.get("additionalProperties") {
                        Some(v) if v.is_object() => Ty::Map(Some(v)),
                        _ => Ty::Leaf,
                    }
                }
            }
            _ => Ty::Leaf,
        }
    }

    /// The schema of field `key` under a struct or map node.
    pub fn field(&self, ty: Ty, key: &str) -> Option<&'static Value> {
        match ty {
            Ty::Struct(n) => n.get("properties")?.get(key),
            Ty::Map(elem) => elem,
            _ => None,
        }
    }

    /// Whether `key` is a declared field of a struct (map entries are not).
    pub fn declared(&self, ty: Ty, key: &str) -> bool {
        matches!(ty, Ty::Struct(_)) && self.field(ty, key).is_some()
    }

    /// The schema of a keyed list's items.
    pub fn items(&self, ty: Ty) -> Option<&'static Value> {
        match ty {
            Ty::Keyed(items, _) => Some(items),
            _ => None,
        }
    }

    /// The path element of a list item: its key fields (a missing one takes the schema's
    /// default, as `protocol: TCP` of a port), or the value of a set item.
    pub fn item_pe(&self, ty: Ty, item: &Value) -> Option<Pe> {
        match ty {
            Ty::Set => Some(Pe::value(item)),
            Ty::Keyed(items, keys) => {
                let item_ty = self.ty(Some(items));
                let mut fields = BTreeMap::new();
                for k in keys.iter().filter_map(Value::as_str) {
                    let v = item.get(k).cloned().or_else(|| {
                        let n = field_validation::resolve(self.schemas, self.field(item_ty, k)?);
                        n.get("default").cloned()
                    });
                    if let Some(v) = v {
                        fields.insert(k.to_string(), v);
                    }
                }
                Some(Pe::key(&fields))
            }
            _ => None,
        }
    }
}

fn list_ty(n: &'static Value) -> Ty {
    let items = n.get("items");
    match n.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => Ty::Set,
        Some("map") => match (items, n.get("x-kubernetes-list-map-keys")) {
            (Some(items), Some(Value::Array(keys))) => Ty::Keyed(items, keys.as_slice()),
            _ => Ty::Leaf,
        },
        _ => Ty::Leaf,
    }
}
