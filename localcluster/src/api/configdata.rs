//! Secret and ConfigMap `data`: the decoder's base64 check (Go's error text, with the offset
//! of the first bad byte) and validation's key rule (`[-._a-zA-Z0-9]+`, at most 253).

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{ApiError, Cause};

const KEY_MAX: usize = 253;
const KEY_RULE: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Where Go's `base64.StdEncoding` reports a value corrupt (`illegal base64 data at input
/// byte N`), or None when it decodes.
fn corrupt_at(s: &str) -> Option<usize> {
    use base64::DecodeError as E;
    match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(_) => None,
        Err(E::InvalidByte(at, _) | E::InvalidLastSymbol(at, _)) => Some(at),
        Err(E::InvalidLength(len)) => Some(len),
        Err(E::InvalidPadding) => Some(s.trim_end_matches('=').len()),
    }
}

/// The decoder's 400 for a Secret whose `data` holds a non-string or non-base64 value.
///
/// # Errors
/// 400 `Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte N`.
pub fn check_base64(obj: &Value) -> Result<(), ApiError> {
    let Some(d) = obj.get("data").and_then(Value::as_object) else {
        return Ok(());
    };
    for v in d.values() {
        let problem = match v.as_str() {
            Some(s) => corrupt_at(s).map(|at| format!("illegal base64 data at input byte {at}")),
            None => Some("json: cannot unmarshal into Go value of type []uint8".to_string()),
        };
        if let Some(p) = problem {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: {p}"
            )));
        }
    }
    Ok(())
}

/// kube-apiserver's `IsConfigMapKey` on every key of `data` (and `binaryData`).
pub fn validate_keys(obj: &Value, causes: &mut Vec<Cause>) {
    for field in ["data", "binaryData"] {
        for k in obj[field].as_object().into_iter().flat_map(|m| m.keys()) {
            let path = format!("{field}[{k}]");
            if k.len() > KEY_MAX {
                let detail = format!("must be no more than {KEY_MAX} characters");
                causes.push(Cause::invalid(path.clone(), &json!(k), &detail));
            }
            let ok = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !ok {
                causes.push(Cause::invalid(path, &json!(k), KEY_RULE));
            } else if k == "." || k == ".." {
                causes.push(Cause::invalid(path, &json!(k), "must not be '.' or '..'"));
            } else if k.starts_with("..") {
                causes.push(Cause::invalid(path, &json!(k), "must not start with '..'"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_name_the_byte() {
        assert_eq!(corrupt_at("eA=="), None);
        assert_eq!(corrupt_at("!!!!"), Some(0));
        assert_eq!(corrupt_at("eA!="), Some(2));
        let e = check_base64(&json!({"data": {"k": "%%"}})).unwrap_err();
        assert!(
            e.message.ends_with("illegal base64 data at input byte 0"),
            "{}",
            e.message
        );
    }

    #[test]
    fn keys_follow_the_config_key_rule() {
        let mut c = Vec::new();
        validate_keys(&json!({"data": {"ok-key_1.x": "", "bad key!": ""}}), &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "data[bad key!]");
        assert!(c[0]
            .message
            .starts_with("Invalid value: \"bad key!\": a valid config key"));
    }
}
