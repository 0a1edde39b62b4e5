//! Fault injection for reliability tests: for the next N requests matching a method and a path
//! pattern, answer an error status (with Retry-After), reset the connection, add latency before
//! the request is served, or serve it and answer late (a slow server that did the work).

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// What to do to a matching request.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer this status (500, 503, 504, 429) as a Kubernetes Status, with an optional
    /// `Retry-After` in seconds.
    Status(u16, Option<u32>),
    /// Close the connection without answering.
    Reset,
    /// Wait this long, then serve the request normally.
    Latency(Duration),
    /// Serve the request, then wait this long before answering: the change is made even when
    /// the client gives up waiting (what a real overloaded API server does).
    LateAnswer(Duration),
}

/// One armed fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` = any.
    pub method: Option<String>,
    /// Path pattern (query excluded): `*` matches any run of characters; a pattern without `*`
    /// matches every path that contains it. `None` = any path.
    pub path: Option<String>,
    /// How many matching requests to affect.
    pub times: u32,
    /// The fault.
    pub action: Fault,
}

impl FaultRule {
    /// A rule answering `code` (with `Retry-After` seconds) to the next `times` matching requests.
    pub fn status(
        method: Option<&str>,
        path: Option<&str>,
        times: u32,
        code: u16,
        retry_after: Option<u32>,
    ) -> Self {
        FaultRule {
            method: method.map(String::from),
            path: path.map(String::from),
            times,
            action: Fault::Status(code, retry_after),
        }
    }

    /// Parses the admin endpoint's JSON:
    /// `{"method": "GET", "path": "/apis/batch/v1/*", "times": 3, "status": 503, "retryAfter": 1}`,
    /// or with `"reset": true`, `"latencyMs": 200` or `"lateAnswerMs": 200` instead of `status`.
    ///
    /// # Errors
    /// A message when the JSON names no action or has wrong types.
    pub fn from_json(v: &Value) -> Result<FaultRule, String> {
        let obj = v.as_object().ok_or("a fault rule must be a JSON object")?;
        let text = |k: &str| -> Result<Option<String>, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{k} must be a string")),
            }
        };
        let number = |k: &str| -> Result<Option<u64>, String> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("{k} must be a non-negative integer")),
            }
        };
        let times = u32::try_from(number("times")?.unwrap_or(1))
            .map_err(|_| "times is too large".to_string())?;
        let action = if let Some(code) = number("status")? {
            let code =
                u16::try_from(code).map_err(|_| "status is not an HTTP status".to_string())?;
            if !(400..600).contains(&code) {
                return Err("status must be 4xx or 5xx".into());
            }
            let retry = number("retryAfter")?.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
            Fault::Status(code, retry)
        } else if obj.get("reset").and_then(Value::as_bool) == Some(true) {
            Fault::Reset
        } else if let Some(ms) = number("latencyMs")? {
            Fault::Latency(Duration::from_millis(ms))
        } else if let Some(ms) = number("lateAnswerMs")? {
            Fault::LateAnswer(Duration::from_millis(ms))
        } else {
            return Err(
                "a fault rule needs one of status, reset: true, latencyMs, lateAnswerMs".into(),
            );
        };
        Ok(FaultRule {
            method: text("method")?,
            path: text("path")?,
            times,
            action,
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method {
            if !m.eq_ignore_ascii_case(method) {
                return false;
            }
        }
        match &self.path {
            None => true,
            Some(p) if p.contains('*') => glob(p, path),
            Some(p) => path.contains(p.as_str()),
        }
    }
}

/// `*`-only glob matching over the whole text.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) {
        return false;
    }
    let mut rest = &text[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The armed rules, consumed as requests match them (first matching rule wins).
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    /// Arms a rule (after the ones already armed).
    pub fn add(&self, rule: FaultRule) {
        if rule.times > 0 {
            self.lock().push(rule);
        }
    }

    /// Disarms every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault for this request, if a rule matches (its count goes down by one).
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut rules = self.lock();
        if rules.is_empty() {
            return None;
        }
        let i = rules.iter().position(|r| r.matches(method, path))?;
        let action = rules[i].action.clone();
        rules[i].times -= 1;
        if rules[i].times == 0 {
            rules.remove(i);
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(
            "/apis/batch/v1/*",
            "/apis/batch/v1/namespaces/default/jobs"
        ));
        assert!(glob("*/jobs", "/apis/batch/v1/namespaces/default/jobs"));
        assert!(!glob("*/jobs", "/apis/batch/v1/namespaces/default/jobs/x"));
        assert!(glob("/a*b*c", "/aXbYc"));
    }

    #[test]
    fn rules_count_down() {
        let f = Faults::default();
        f.add(
            FaultRule::from_json(
                &serde_json::json!({"method": "post", "path": "jobs", "times": 2, "status": 503}),
            )
            .unwrap(),
        );
        assert_eq!(f.take("GET", "/apis/batch/v1/jobs"), None);
        assert_eq!(
            f.take("POST", "/apis/batch/v1/jobs"),
            Some(Fault::Status(503, None))
        );
        assert_eq!(
            f.take("POST", "/apis/batch/v1/jobs"),
            Some(Fault::Status(503, None))
        );
        assert_eq!(f.take("POST", "/apis/batch/v1/jobs"), None);
    }

    #[test]
    fn late_answers_parse() {
        let rule = FaultRule::from_json(&serde_json::json!({"lateAnswerMs": 1500})).unwrap();
        assert_eq!(rule.action, Fault::LateAnswer(Duration::from_millis(1500)));
        assert_eq!(rule.times, 1);
        assert!(FaultRule::from_json(&serde_json::json!({"times": 2})).is_err());
    }
}
