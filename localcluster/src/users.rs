//! Who may call the API: the admin token (every request, like `system:masters`) and users a test
//! adds with RBAC rules, each with its own token. [`User::allows`] matches rules the way
//! Kubernetes' RBAC authorizer does (verbs, API groups, resources with `*` and `*/sub`,
//! resource names), so the emulator answers access reviews and refuses requests as a cluster
//! with those Roles bound would.

use std::sync::{Arc, RwLock};

use serde::Deserialize;

/// One RBAC `PolicyRule` (the fields of a Role's `rules[]` that resource requests use).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// `""` is the core group; `*` any.
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Plurals, `plural/subresource`, `*`, `*/subresource`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `*`.
    pub verbs: Vec<String>,
    /// When set, only objects of these names.
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/api/*`); every user may read discovery anyway.
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

/// What a request asks to do (Kubernetes' `authorizer.Attributes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attributes {
    /// A request on a resource.
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    /// Any other path (discovery, health, OpenAPI, the emulator's admin endpoints).
    NonResource { verb: String, path: String },
}

/// An authenticated caller.
#[derive(Debug)]
pub struct User {
    /// The user name (`SelfSubjectReview`, forbidden messages).
    pub name: String,
    /// The groups (`system:authenticated` for every user).
    pub groups: Vec<String>,
    token: String,
    /// `None`: the admin, allowed everything.
    rules: Option<Vec<Rule>>,
    /// Where the resource rules apply: one namespace (a Role bound there), or `None`, every
    /// namespace and the cluster scope (a ClusterRole bound cluster-wide).
    namespace: Option<String>,
}

/// Paths every authenticated user may GET (the `system:discovery` and
/// `system:public-info-viewer` ClusterRoles).
const PUBLIC_PATHS: &[&str] = &[
    "/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz",
];

impl User {
    /// Whether the user may do `what`.
    pub fn allows(&self, what: &Attributes) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        match what {
            Attributes::NonResource { verb, path } => {
                (verb == "get" && is_public(path))
                    || rules.iter().any(|r| non_resource_matches(r, verb, path))
            }
            Attributes::Resource { namespace, .. } => {
                self.namespace.as_ref().is_none_or(|ns| ns == namespace)
                    && rules.iter().any(|r| resource_matches(r, what))
            }
        }
    }

    /// The user's rules; `None` for the admin.
    pub fn rules(&self) -> Option<&[Rule]> {
        self.rules.as_deref()
    }

    /// Whether this is the admin (the cluster's own token).
    pub fn is_admin(&self) -> bool {
        self.rules.is_none()
    }
}

fn is_public(path: &str) -> bool {
    PUBLIC_PATHS
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

fn has(list: &[String], wanted: &str) -> bool {
    list.iter().any(|x| x == "*" || x == wanted)
}

fn resource_matches(rule: &Rule, what: &Attributes) -> bool {
    let Attributes::Resource {
        verb,
        group,
        resource,
        subresource,
        name,
        ..
    } = what
    else {
        return false;
    };
    let combined = if subresource.is_empty() {
        resource.clone()
    } else {
        format!("{resource}/{subresource}")
    };
    let resource_ok = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource.as_str()))
    });
    let name_ok = rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name);
    has(&rule.verbs, verb) && has(&rule.api_groups, group) && resource_ok && name_ok
}

fn non_resource_matches(rule: &Rule, verb: &str, path: &str) -> bool {
    has(&rule.verbs, verb)
        && rule.non_resource_urls.iter().any(|u| {
            u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        })
}

/// The cluster's users: the admin and the ones added since.
#[derive(Debug)]
pub struct Users {
    admin: Arc<User>,
    others: RwLock<Vec<Arc<User>>>,
}

impl Users {
    /// The admin, with the cluster's token.
    pub fn new(admin_token: &str) -> Users {
        let admin = User {
            name: "kjenv-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            token: admin_token.into(),
            rules: None,
            namespace: None,
        };
        Users {
            admin: Arc::new(admin),
            others: RwLock::new(Vec::new()),
        }
    }

    /// Adds user `name` with `rules`, in `namespace` only or (`None`) everywhere, and returns
    /// its token; a user of that name keeps its token and gets these rules (as editing its Role
    /// would).
    pub fn add(&self, name: &str, rules: Vec<Rule>, namespace: Option<&str>) -> String {
        use rand::distr::{Alphanumeric, SampleString};
        let mut others = self.others.write().unwrap_or_else(|e| e.into_inner());
        let token = match others.iter().find(|u| u.name == name) {
            Some(u) => u.token.clone(),
            None => Alphanumeric.sample_string(&mut rand::rng(), 32),
        };
        let user = Arc::new(User {
            name: name.into(),
            groups: vec!["system:authenticated".into()],
            token: token.clone(),
            rules: Some(rules),
            namespace: namespace.map(str::to_string),
        });
        others.retain(|u| u.name != name);
        others.push(user);
        token
    }

    /// The user whose token was presented, if any.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<User>> {
        if same_secret(presented, &self.admin.token) {
            return Some(self.admin.clone());
        }
        let others = self.others.read().unwrap_or_else(|e| e.into_inner());
        others
            .iter()
            .find(|u| same_secret(presented, &u.token))
            .cloned()
    }
}

/// Compares a presented token with a user's without an early exit on the first differing
/// byte (no timing hint of how much of a guess was right).
fn same_secret(presented: &str, token: &str) -> bool {
    let (a, b) = (presented.as_bytes(), token.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ x);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn user(rules: &str) -> Arc<User> {
        let users = Users::new("admin-token");
        let token = users.add("u", serde_json::from_str(rules).unwrap(), None);
        users.authenticate(&token).unwrap()
    }

    #[test]
    fn rules_match_as_rbac_does() {
        let u = user(
            r#"[{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s1"]},
                {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}]"#,
        );
        assert!(u.allows(&res("create", "batch", "jobs", "", "")));
        assert!(!u.allows(&res("delete", "batch", "jobs", "", "j")));
        assert!(!u.allows(&res("create", "", "jobs", "", "")), "wrong group");
        assert!(u.allows(&res("get", "", "pods", "log", "p")));
        assert!(
            !u.allows(&res("get", "", "pods", "", "p")),
            "pods/log is not pods"
        );
        assert!(u.allows(&res("get", "", "secrets", "", "s1")));
        assert!(!u.allows(&res("get", "", "secrets", "", "s2")));
        assert!(!u.allows(&res("list", "", "secrets", "", "")));
        assert!(u.allows(&res("update", "batch", "jobs", "status", "j")));
        let discovery = Attributes::NonResource {
            verb: "get".into(),
            path: "/apis/batch/v1".into(),
        };
        assert!(u.allows(&discovery));
        let admin_path = Attributes::NonResource {
            verb: "post".into(),
            path: "/_kjenv/faults".into(),
        };
        assert!(!u.allows(&admin_path));
    }

    #[test]
    fn a_namespaced_user_s_rules_apply_in_its_namespace_only() {
        let users = Users::new("admin-token");
        let rules =
            serde_json::from_str(r#"[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]"#);
        let token = users.add("n", rules.unwrap(), Some("team"));
        let u = users.authenticate(&token).unwrap();
        let in_ns = |ns: &str| Attributes::Resource {
            verb: "list".into(),
            group: "".into(),
            resource: "pods".into(),
            subresource: "".into(),
            namespace: ns.into(),
            name: "".into(),
        };
        assert!(u.allows(&in_ns("team")));
        assert!(!u.allows(&in_ns("default")));
        assert!(!u.allows(&in_ns("")), "all namespaces / the cluster scope");
    }

    #[test]
    fn tokens_name_their_user_and_the_admin_may_do_anything() {
        let users = Users::new("admin-token");
        let t1 = users.add("a", vec![], None);
        let everything = Rule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..Rule::default()
        };
        let t2 = users.add("a", vec![everything], None);
        assert_eq!(t1, t2, "new rules, the same token");
        let a = users.authenticate(&t2).unwrap();
        assert_eq!(a.name, "a");
        assert!(
            a.allows(&res("delete", "", "pods", "", "p")),
            "the new rules apply"
        );
        assert!(users.authenticate("nope").is_none());
        let admin = users.authenticate("admin-token").unwrap();
        assert!(admin.is_admin());
        assert!(admin.allows(&res("deletecollection", "", "pods", "", "")));
    }
}
