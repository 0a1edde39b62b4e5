//! A list item as kube-apiserver's JSON lists carry it: the object without its top-level
//! `kind` and `apiVersion` (the list's own `kind`/`apiVersion` name the type once).

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// Serialises a stored object without its `kind`/`apiVersion`, without copying it.
pub struct ListItem<'a>(pub &'a Value);

impl Serialize for ListItem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.0.as_object() else {
            return self.0.serialize(s);
        };
        let kept = map
            .iter()
            .filter(|(k, _)| k.as_str() != "kind" && k.as_str() != "apiVersion");
        let mut out = s.serialize_map(None)?;
        for (k, v) in kept {
            out.serialize_entry(k, v)?;
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_only_the_type() {
        let o = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a", "kind": "x"}});
        let s = serde_json::to_value(ListItem(&o)).unwrap();
        assert_eq!(s, json!({"metadata": {"name": "a", "kind": "x"}}));
    }
}
