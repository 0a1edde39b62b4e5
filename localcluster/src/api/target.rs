//! What a resource request points at ([`Target`], parsed from the path) and how the client
//! wants objects rendered ([`Format`], from `Accept`): a leaf the handlers share with the router.

use crate::error::ApiError;
use crate::kind::Kind;

/// Where a resource request points.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The resource kind.
    pub kind: Kind,
    /// The namespace from the path; `None` for cluster-wide collections and cluster-scoped kinds.
    pub ns: Option<String>,
    /// The object name, for item requests.
    pub name: Option<String>,
    /// The subresource (`status`, `log`).
    pub sub: Option<String>,
}

/// How the client wants objects rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain JSON objects.
    Json,
    /// `meta.k8s.io/v1` Table.
    Table,
}

/// Parses `rest` (the path after the group version) into a [`Target`].
pub fn parse_target(group: &str, rest: &[&str]) -> Option<Target> {
    let kind_of = |plural: &str| Kind::from_plural(group, plural);
    let t = |kind, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        kind,
        ns: ns.map(String::from),
        name: name.map(String::from),
        sub: sub.map(String::from),
    };
    match rest {
        [plural] => Some(t(kind_of(plural)?, None, None, None)),
        ["namespaces", ns] if group.is_empty() => Some(t(Kind::Namespace, None, Some(ns), None)),
        ["namespaces", ns, "status"] if group.is_empty() => {
            Some(t(Kind::Namespace, None, Some(ns), Some("status")))
        }
        ["namespaces", ns, plural] => {
            let k = kind_of(plural)?;
            k.namespaced().then(|| t(k, Some(ns), None, None))
        }
        ["namespaces", ns, plural, name] => {
            let k = kind_of(plural)?;
            k.namespaced().then(|| t(k, Some(ns), Some(name), None))
        }
        ["namespaces", ns, plural, name, sub] => {
            let k = kind_of(plural)?;
            let ok = matches!(
                (k, *sub),
                (Kind::Pod, "status" | "log" | "binding" | "exec") | (Kind::Job, "status")
            );
            (k.namespaced() && ok).then(|| t(k, Some(ns), Some(name), Some(sub)))
        }
        [plural, name] => {
            let k = kind_of(plural)?;
            (!k.namespaced()).then(|| t(k, None, Some(name), None))
        }
        _ => None,
    }
}

/// Picks the response format from `Accept`.
///
/// # Errors
/// 406 when only unsupported media types are listed.
pub fn negotiate(accept: Option<&str>) -> Result<Format, ApiError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(Format::Json);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let as_ = params
            .iter()
            .find(|(k, _)| k == "as")
            .map(|(_, v)| v.as_str());
        match media.as_str() {
            "application/json" | "application/*" => match as_ {
                Some("Table") => return Ok(Format::Table),
                _ => return Ok(Format::Json),
            },
            "*/*" => return Ok(Format::Json),
            // Protobuf answers are JSON answers re-encoded (api::protobuf).
            m if super::protobuf::is_protobuf(m) => return Ok(Format::Json),
            _ => {}
        }
    }
    Err(ApiError::not_acceptable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("batch", &["namespaces", "default", "jobs", "x", "status"]).unwrap();
        assert_eq!(
            (t.kind, t.ns.as_deref(), t.name.as_deref(), t.sub.as_deref()),
            (Kind::Job, Some("default"), Some("x"), Some("status"))
        );
        assert_eq!(parse_target("", &["pods"]).unwrap().ns, None);
        assert_eq!(
            parse_target("", &["namespaces", "n"]).unwrap().kind,
            Kind::Namespace
        );
        assert!(parse_target("", &["jobs"]).is_none());
        let exec = parse_target("", &["namespaces", "d", "pods", "p", "exec"]).unwrap();
        assert_eq!(exec.sub.as_deref(), Some("exec"));
        assert!(parse_target("", &["namespaces", "d", "pods", "p", "attach"]).is_none());
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None).unwrap(), Format::Json);
        assert_eq!(
            negotiate(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Format::Table
        );
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")).unwrap(),
            Format::Json
        );
        assert_eq!(negotiate(Some("application/yaml")).unwrap_err().code, 406);
    }
}
