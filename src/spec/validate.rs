//! The shape a Job spec must have before kjenv rewrites it: the fields kjenv reads or writes are
//! checked for type; everything else is the API server's business and passes through untouched.

use serde_json::{Map, Value};

use super::names;
use crate::naming::{JOB_API_VERSION, JOB_KIND};

/// A shape error: the field path (segments; list indices as numbers) and what was expected.
pub(crate) type ShapeError = (Vec<String>, String);

/// `a mapping`, `a list`, `an integer`, … for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The message for an integer beyond 64 bits (`shown` is its digits, or how many bits it has):
/// the API server's numbers are 64-bit, and a float in its place would change the value.
pub fn integer_out_of_range(shown: &str) -> String {
    format!(
        "the integer {} does not fit in 64 bits (Kubernetes integers are 64-bit; quote it if \
         it is meant as a string)",
        names::shorten(shown, 40)
    )
}

/// The message for a NaN or an infinity (`shown` as Python or YAML writes it).
pub fn non_finite(shown: &str) -> String {
    format!(
        "expected a finite number, got {shown} (a Kubernetes object is JSON, which has no NaN \
         or infinity)"
    )
}

/// The longest path segment (a user's mapping key) shown in a field path; longer ones are cut.
const SEGMENT_CHARS: usize = 64;

/// `spec.template.spec.containers[0].env[2].name`
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        // A user's key may hold anything: quoted when it has control characters (the message
        // stays on one line), cut when long.
        let shown;
        let segment = match (
            segment.chars().any(char::is_control),
            segment.char_indices().nth(SEGMENT_CHARS),
        ) {
            (true, _) => {
                shown = names::quote(segment);
                &shown
            }
            (false, Some((end, _))) => {
                shown = format!("{}…", &segment[..end]);
                &shown
            }
            (false, None) => segment,
        };
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

struct Checker {
    path: Vec<String>,
}

impl Checker {
    fn fail<T>(&self, key: &str, message: String) -> Result<T, ShapeError> {
        let mut path = self.path.clone();
        if !key.is_empty() {
            path.push(key.to_string());
        }
        Err((path, message))
    }

    /// The optional mapping at `key` (null counts as absent).
    fn mapping<'a>(
        &self,
        obj: &'a Map<String, Value>,
        key: &str,
        what: &str,
    ) -> Result<Option<&'a Map<String, Value>>, ShapeError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => self.fail(key, format!("expected {what}, got {}", describe(other))),
        }
    }

    fn list<'a>(
        &self,
        obj: &'a Map<String, Value>,
        key: &str,
        what: &str,
    ) -> Result<Option<&'a Vec<Value>>, ShapeError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => self.fail(key, format!("expected {what}, got {}", describe(other))),
        }
    }

    fn string(&self, obj: &Map<String, Value>, key: &str) -> Result<(), ShapeError> {
        match obj.get(key) {
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
            Some(other) => self.fail(key, format!("expected a string, got {}", describe(other))),
        }
    }

    /// A mapping of strings to strings; `rule` checks each key and value.
    fn string_map(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        rule: fn(&str, &str) -> Result<(), String>,
    ) -> Result<(), ShapeError> {
        if let Some(map) = self.mapping(obj, key, "a mapping of strings to strings")? {
            self.path.push(key.to_string());
            for (k, v) in map {
                let Value::String(v) = v else {
                    return self.fail(
                        k,
                        format!(
                            "expected a string, got {} (quote it: \"{}\")",
                            describe(v),
                            short(v)
                        ),
                    );
                };
                if let Err(message) = rule(k, v) {
                    return self.fail(k, message);
                }
            }
            self.path.pop();
        }
        Ok(())
    }

    fn string_list(&mut self, obj: &Map<String, Value>, key: &str) -> Result<(), ShapeError> {
        if let Some(items) = self.list(obj, key, "a list of strings")? {
            self.path.push(key.to_string());
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return self.fail(
                        &i.to_string(),
                        format!("expected a string, got {}", describe(item)),
                    );
                }
            }
            self.path.pop();
        }
        Ok(())
    }

    fn metadata(&mut self, obj: &Map<String, Value>) -> Result<(), ShapeError> {
        if let Some(meta) = self.mapping(obj, "metadata", "a mapping (object metadata)")? {
            self.path.push("metadata".into());
            for (key, rule) in [
                (
                    "name",
                    names::dns_subdomain as fn(&str, bool) -> Result<(), String>,
                ),
                ("generateName", names::dns_subdomain),
                ("namespace", |s, _| names::dns_label(s)),
            ] {
                self.string(meta, key)?;
                if let Some(Value::String(s)) = meta.get(key) {
                    if !s.is_empty() {
                        rule(s, key == "generateName").or_else(|m| self.fail(key, m))?;
                    }
                }
            }
            self.string_map(meta, "labels", |k, v| {
                names::label_key(k)?;
                names::label_value(v)
            })?;
            self.string_map(meta, "annotations", |k, _| names::label_key(k))?;
            self.path.pop();
        }
        Ok(())
    }

    fn containers(&mut self, pod: &Map<String, Value>, key: &str) -> Result<(), ShapeError> {
        let what = if key == "containers" {
            "a list of containers"
        } else {
            "a list of init containers"
        };
        let Some(items) = self.list(pod, key, what)? else {
            return Ok(());
        };
        self.path.push(key.to_string());
        for (i, item) in items.iter().enumerate() {
            let index = i.to_string();
            let Value::Object(container) = item else {
                return self.fail(
                    &index,
                    format!("expected a container (a mapping), got {}", describe(item)),
                );
            };
            self.path.push(index);
            self.string(container, "name")?;
            if let Some(Value::String(name)) = container.get("name") {
                if !name.is_empty() {
                    names::dns_label(name).or_else(|m| self.fail("name", m))?;
                }
            }
            self.string(container, "image")?;
            self.string(container, "workingDir")?;
            self.string_list(container, "command")?;
            self.string_list(container, "args")?;
            if let Some(env) = self.list(container, "env", "a list of environment variables")? {
                self.path.push("env".into());
                for (j, var) in env.iter().enumerate() {
                    let Value::Object(var) = var else {
                        return self.fail(
                            &j.to_string(),
                            format!("expected an environment variable (a mapping with name and value), got {}", describe(var)),
                        );
                    };
                    self.path.push(j.to_string());
                    match var.get("name") {
                        Some(Value::String(name)) => {
                            names::env_name(name).or_else(|m| self.fail("name", m))?;
                        }
                        None | Some(Value::Null) => {
                            return self.fail(
                                "name",
                                "required value: every env entry needs a name".into(),
                            )
                        }
                        Some(other) => {
                            return self.fail(
                                "name",
                                format!("expected a string, got {}", describe(other)),
                            )
                        }
                    }
                    match var.get("value") {
                        None | Some(Value::Null) | Some(Value::String(_)) => {}
                        Some(other) => {
                            return self.fail(
                                "value",
                                format!(
                                    "expected a string, got {} (quote it: \"{}\")",
                                    describe(other),
                                    short(other)
                                ),
                            )
                        }
                    }
                    self.mapping(var, "valueFrom", "a mapping (an env var source)")?;
                    self.path.pop();
                }
                self.path.pop();
            }
            self.path.pop();
        }
        self.path.pop();
        Ok(())
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(40).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// Check the shape of a Job spec and fill in a missing `apiVersion`/`kind`.
pub(crate) fn check(value: &mut Value) -> Result<(), ShapeError> {
    let root = match value {
        Value::Object(map) => map,
        Value::Null => return Err((vec![], "the job spec is empty; expected a Kubernetes Job (a mapping with apiVersion: batch/v1 and kind: Job)".into())),
        other => {
            return Err((vec![], format!("expected a Kubernetes Job (a mapping), got {}", describe(other))));
        }
    };
    let mut c = Checker { path: Vec::new() };
    for (index, (key, expected)) in [("apiVersion", JOB_API_VERSION), ("kind", JOB_KIND)]
        .into_iter()
        .enumerate()
    {
        match root.get(key) {
            None | Some(Value::Null) => {
                // Filled in where a person would have written it: at the top.
                root.shift_remove(key);
                root.shift_insert(
                    index.min(root.len()),
                    key.to_string(),
                    Value::String(expected.into()),
                );
            }
            Some(Value::String(s)) if s == expected => {}
            Some(Value::String(s)) => {
                return c.fail(
                    key,
                    format!(
                        "expected \"{expected}\", got {}: kjenv runs flows as a batch/v1 Job",
                        names::quote(s)
                    ),
                );
            }
            Some(other) => {
                return c.fail(
                    key,
                    format!("expected \"{expected}\", got {}", describe(other)),
                )
            }
        }
    }
    c.metadata(root)?;
    let Some(spec) = c.mapping(root, "spec", "a mapping (the Job spec)")? else {
        return Ok(());
    };
    c.path.push("spec".into());
    if let Some(template) = c.mapping(spec, "template", "a mapping (the pod template)")? {
        c.path.push("template".into());
        c.metadata(template)?;
        if let Some(pod) = c.mapping(template, "spec", "a mapping (the pod spec)")? {
            c.path.push("spec".into());
            c.string(pod, "restartPolicy")?;
            match pod.get("restartPolicy") {
                Some(Value::String(p)) if !p.is_empty() && p != "Never" && p != "OnFailure" => {
                    return c.fail(
                        "restartPolicy",
                        format!(
                            "expected \"Never\" or \"OnFailure\" (a Job's pods may not restart \
                             always), got {}",
                            names::quote(p)
                        ),
                    );
                }
                _ => {}
            }
            c.containers(pod, "containers")?;
            c.containers(pod, "initContainers")?;
        }
    }
    Ok(())
}
