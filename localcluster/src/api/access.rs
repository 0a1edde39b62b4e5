//! Authorization and the self reviews: what a request asks to do (Kubernetes' `RequestInfo`),
//! the 403 a user without the rule gets (kube-apiserver's words), and the answers to
//! `SelfSubjectAccessReview`, `SelfSubjectRulesReview` (`kubectl auth can-i [--list]`) and
//! `SelfSubjectReview` (`kubectl auth whoami`) for the token that asks.

use hyper::{Method, Response};
use serde_json::{json, Value};

use super::{error_response, json_response, Body, Req};
use crate::error::{ApiError, Cause};
use crate::users::{Attributes, Rule, User};

const AUTHORIZATION_V1: &str = "/apis/authorization.k8s.io/v1/";
const AUTHENTICATION_V1: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

/// The answer for `req` when it is a self review or not allowed; `None` lets it through.
pub fn gate(user: &User, req: &Req) -> Option<Response<Body>> {
    if req.method == Method::POST {
        if let Some(answer) = review(user, req) {
            return Some(answer.unwrap_or_else(|e| error_response(&e)));
        }
    }
    let what = attributes(&req.method, &req.path, req.flag("watch"));
    if !user.allows(&what) {
        return Some(error_response(&forbidden(user, &what)));
    }
    let create = websocket_connect(req, &what)?;
    (!user.allows(&create)).then(|| error_response(&forbidden(user, &create)))
}

/// A WebSocket `GET` of `pods/exec`, `pods/attach` or `pods/portforward` is authorized as
/// `get` and then also as `create` (kube-apiserver >= 1.35,
/// `AuthorizePodWebsocketUpgradeCreatePermission`, on by default): SPDY's `POST` always
/// needed `create`. Returns the `create` to check.
fn websocket_connect(req: &Req, what: &Attributes) -> Option<Attributes> {
    let Attributes::Resource {
        verb,
        group,
        resource,
        subresource,
        ..
    } = what
    else {
        return None;
    };
    let connect = verb == "get"
        && group.is_empty()
        && resource == "pods"
        && matches!(subresource.as_str(), "exec" | "attach" | "portforward");
    let websocket = req.header(hyper::header::UPGRADE).is_some_and(|u| {
        u.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    if !(connect && websocket) {
        return None;
    }
    let mut create = what.clone();
    if let Attributes::Resource { verb, .. } = &mut create {
        *verb = "create".into();
    }
    Some(create)
}

/// The request's verb and target, as Kubernetes' `RequestInfoFactory` reads them from the path.
pub fn attributes(method: &Method, path: &str, watch: bool) -> Attributes {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => {
            return Attributes::NonResource {
                verb: method.as_str().to_ascii_lowercase(),
                path: path.to_string(),
            }
        }
    };
    let (namespace, parts) = match rest {
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") =>
        {
            (ns.to_string(), tail)
        }
        ["namespaces", ns, ..] => (ns.to_string(), rest),
        _ => (String::new(), rest),
    };
    let name = parts.get(1).map(|s| s.to_string()).unwrap_or_default();
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if name.is_empty() => "list",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if name.is_empty() => "deletecollection",
        Method::DELETE => "delete",
        _ => "",
    };
    Attributes::Resource {
        verb: verb.into(),
        group: group.into(),
        resource: parts[0].into(),
        subresource: parts.get(2).map(|s| s.to_string()).unwrap_or_default(),
        namespace,
        name,
    }
}

/// kube-apiserver's 403 for a request its authorizer refused.
pub fn forbidden(user: &User, what: &Attributes) -> ApiError {
    match what {
        Attributes::NonResource { verb, path } => {
            let mut e = ApiError::forbidden(format!(
                "forbidden: User {:?} cannot {verb} path {path:?}",
                user.name
            ));
            e.details = Some(Box::new(json!({})));
            e
        }
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let combined = match subresource.as_str() {
                "" => resource.clone(),
                sub => format!("{resource}/{sub}"),
            };
            let scope = match namespace.as_str() {
                "" => "at the cluster scope".to_string(),
                ns => format!("in the namespace {ns:?}"),
            };
            let reason = format!(
                "User {:?} cannot {verb} resource {combined:?} in API group {group:?} {scope}",
                user.name
            );
            let qualified = match group.as_str() {
                "" => resource.clone(),
                g => format!("{resource}.{g}"),
            };
            let message = match name.as_str() {
                "" => format!("{qualified} is forbidden: {reason}"),
                n => format!("{qualified} {n:?} is forbidden: {reason}"),
            };
            let mut e = ApiError::forbidden(message);
            let mut details = json!({"kind": resource});
            if !name.is_empty() {
                details["name"] = json!(name);
            }
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            e.details = Some(Box::new(details));
            e
        }
    }
}

/// A self review's answer, or `None` when `req` is no self review.
fn review(user: &User, req: &Req) -> Option<Result<Response<Body>, ApiError>> {
    let path = req.path.trim_end_matches('/');
    if path == AUTHENTICATION_V1 {
        return Some(Ok(self_subject_review(user)));
    }
    match path.strip_prefix(AUTHORIZATION_V1)? {
        "selfsubjectaccessreviews" => Some(access_review(user, req)),
        "selfsubjectrulesreviews" => Some(rules_review(user, req)),
        _ => None,
    }
}

fn self_subject_review(user: &User) -> Response<Body> {
    json_response(
        201,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": crate::meta::rfc3339(chrono::Utc::now())},
            "status": {"userInfo": {"username": user.name, "groups": user.groups}},
        }),
    )
}

/// A review's body as JSON: kubectl >= 1.32 sends the self reviews as protobuf.
fn review_body(req: &Req, what: &str) -> Result<Value, ApiError> {
    let content_type = req.header(hyper::header::CONTENT_TYPE).unwrap_or("");
    if super::protobuf::is_protobuf(content_type) {
        return super::protobuf::decode_body(&req.body, None);
    }
    req.json_body(what)
}

fn access_review(user: &User, req: &Req) -> Result<Response<Body>, ApiError> {
    let body = review_body(req, "SelfSubjectAccessReview")?;
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let what = match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => Attributes::Resource {
            verb: text(r, "verb"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
        },
        (None, Some(n)) => Attributes::NonResource {
            verb: text(n, "verb"),
            path: text(n, "path"),
        },
        _ => return Err(neither_attributes()),
    };
    let answer = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": spec,
        "status": {"allowed": user.allows(&what)},
    });
    Ok(json_response(201, &answer))
}

/// kube-apiserver's 422 for a review with neither (or both) attributes: its validation names no
/// kind (`.authorization.k8s.io "" is invalid: …`), and so does its `details`.
fn neither_attributes() -> ApiError {
    let cause = Cause::invalid(
        "spec",
        &Value::Null,
        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
    );
    let mut err = ApiError::new(
        422,
        "Invalid",
        format!(
            ".authorization.k8s.io \"\" is invalid: spec: {}",
            cause.message
        ),
    );
    err.details = Some(Box::new(json!({
        "group": "authorization.k8s.io",
        "causes": [{"reason": cause.reason, "message": cause.message, "field": cause.field}],
    })));
    err
}

fn rules_review(user: &User, req: &Req) -> Result<Response<Body>, ApiError> {
    let body = review_body(req, "SelfSubjectRulesReview")?;
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let all = Rule {
        api_groups: vec!["*".into()],
        resources: vec!["*".into()],
        verbs: vec!["*".into()],
        ..Rule::default()
    };
    let rules = user.rules().unwrap_or(std::slice::from_ref(&all));
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(|r| {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            v
        })
        .collect();
    let mut non_resource_rules = vec![json!({
        "verbs": ["get"],
        "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
    })];
    if user.is_admin() {
        non_resource_rules.insert(0, json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    for r in rules.iter().filter(|r| !r.non_resource_urls.is_empty()) {
        non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
    }
    let answer = json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": spec,
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false,
        },
    });
    Ok(json_response(201, &answer))
}
