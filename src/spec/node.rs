//! A YAML tree that remembers where each node came from, so shape errors can name line and column.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// One YAML node with its source position (1-based line and column).
pub(crate) struct Node {
    pub line: u64,
    pub column: u64,
    /// Where the scalar's text starts in the source, in bytes (when the parser knows): a number
    /// the parser could only hold as a float is told apart from a float by its literal.
    pub byte_offset: Option<usize>,
    pub kind: NodeKind,
}

pub(crate) enum NodeKind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// What the deserializer produces before positions are attached.
enum Raw {
    Scalar(Value),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(String, Spanned<Raw>)>),
}

impl From<Spanned<Raw>> for Node {
    fn from(spanned: Spanned<Raw>) -> Self {
        let (line, column) = (spanned.referenced.line(), spanned.referenced.column());
        let byte_offset = spanned
            .defined
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok());
        let kind = match spanned.value {
            Raw::Scalar(v) => NodeKind::Scalar(v),
            Raw::Seq(items) => NodeKind::Seq(items.into_iter().map(Node::from).collect()),
            Raw::Map(entries) => NodeKind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Node::from(v)))
                    .collect(),
            ),
        };
        Node {
            line,
            column,
            byte_offset,
            kind,
        }
    }
}

impl Node {
    /// Parse one YAML document into a positioned tree.
    pub(crate) fn parse(
        text: &str,
        options: serde_saphyr::Options,
    ) -> Result<Node, serde_saphyr::Error> {
        let spanned: Spanned<Raw> = serde_saphyr::from_str_with_options(text, options)?;
        Ok(Node::from(spanned))
    }

    /// The plain JSON value of this tree (mapping order kept).
    pub(crate) fn to_value(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(v) => v.clone(),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.clone(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }

    /// The first integer literal of `text` (the source of this tree) that does not fit in 64
    /// bits, with its field path: the parser gives such a literal as a float (`1e+29`), which
    /// would silently change the user's value.
    pub(crate) fn oversized_integer(&self, text: &str) -> Option<(Vec<String>, String)> {
        match &self.kind {
            NodeKind::Scalar(Value::Number(n)) if n.is_f64() => {
                let literal = self.byte_offset.and_then(|o| text.get(o..))?;
                let end = literal
                    .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | '#'))
                    .unwrap_or(literal.len());
                let literal = &literal[..end];
                let digits = literal.strip_prefix(['-', '+']).unwrap_or(literal);
                (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| (Vec::new(), literal.to_string()))
            }
            NodeKind::Scalar(_) => None,
            NodeKind::Seq(items) => items.iter().enumerate().find_map(|(i, item)| {
                let (mut path, literal) = item.oversized_integer(text)?;
                path.insert(0, i.to_string());
                Some((path, literal))
            }),
            NodeKind::Map(entries) => entries.iter().find_map(|(key, item)| {
                let (mut path, literal) = item.oversized_integer(text)?;
                path.insert(0, key.clone());
                Some((path, literal))
            }),
        }
    }

    /// The node at a field path such as `["spec", "template", "spec", "containers", "0"]`,
    /// or the deepest node on the way there.
    pub(crate) fn locate(&self, path: &[String]) -> &Node {
        let mut node = self;
        for segment in path {
            let next = match &node.kind {
                NodeKind::Map(entries) => {
                    entries.iter().find(|(k, _)| k == segment).map(|(_, v)| v)
                }
                NodeKind::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                NodeKind::Scalar(_) => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Number::from_f64(v)
            .map(|n| Raw::Scalar(Value::Number(n)))
            .ok_or_else(|| {
                E::custom("non-finite numbers (.nan, .inf) are not valid in a Kubernetes object")
            })
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::String(v)))
    }
    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Raw, E> {
        Err(E::custom(
            "binary values (!!binary) are not valid in a Kubernetes object",
        ))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key.0, value));
        }
        Ok(Raw::Map(entries))
    }
}

/// A mapping key: Kubernetes objects are JSON, so scalar keys become strings.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key, E> {
                Ok(Key(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Err(E::custom("a mapping key may not be null"))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}
