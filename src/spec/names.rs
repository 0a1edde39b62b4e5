//! The name rules of the Kubernetes API for the fields kjenv reads or writes (object and
//! container names, namespaces, label keys and values, env var names), so a bad one fails when
//! the spec is loaded, with the field's path, instead of at submission.

/// The longest user value quoted in a message; longer ones lose their middle to `…`.
const QUOTE_CHARS: usize = 64;

/// The longest path shown in a message (a message stays near 300 characters).
pub const PATH_CHARS: usize = 160;

/// `value` at most `max` characters long: a longer one keeps its start and its end (where a
/// path's file name and an image's tag are) around a `…`.
pub fn shorten(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let count = value.chars().count();
    if count <= max {
        return value.into();
    }
    let head = max.saturating_sub(1) * 2 / 3;
    let tail = max.saturating_sub(1) - head;
    let start: String = value.chars().take(head).collect();
    let end: String = value.chars().skip(count - tail).collect();
    format!("{start}…{end}").into()
}

/// A path for a message, shortened in the middle (see [`shorten`]).
pub fn shown_path(path: &std::path::Path) -> String {
    shorten(&path.display().to_string(), PATH_CHARS).into_owned()
}

/// `"value"` for a message, shortened in the middle to a readable length.
pub fn quote(value: &str) -> String {
    format!("{:?}", shorten(value, QUOTE_CHARS))
}

fn is_dns_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// A DNS-1123 label: namespaces and container names.
///
/// # Errors
/// What was expected, for a message.
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.len() <= 63 && is_dns_label_chars(s) {
        return Ok(());
    }
    Err(format!(
        "expected a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and \
         ending with a letter or digit), got {}",
        quote(s)
    ))
}

/// A DNS-1123 subdomain: object names. With `prefix`, a `generateName` (may end with `-`).
///
/// # Errors
/// What was expected, for a message.
pub fn dns_subdomain(s: &str, prefix: bool) -> Result<(), String> {
    let checked = match s.strip_suffix('-') {
        Some(head) if prefix => format!("{head}a"),
        _ => s.to_string(),
    };
    if checked.len() <= 253 && checked.split('.').all(is_dns_label_chars) {
        return Ok(());
    }
    Err(format!(
        "expected a DNS-1123 subdomain (at most 253 lower-case letters, digits, '-' and '.', \
         starting and ending with a letter or digit), got {}",
        quote(s)
    ))
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63
/// letters, digits, `-`, `_` and `.`.
///
/// # Errors
/// What was expected, for a message.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| dns_subdomain(p, false).is_ok());
    if prefix_ok && name.len() <= 63 && is_label_name(name) {
        return Ok(());
    }
    Err(format!(
        "expected a label key ([DNS subdomain/]name, the name at most 63 letters, digits, '-', \
         '_' and '.', starting and ending with a letter or digit), got {}",
        quote(key)
    ))
}

/// A label value: empty, or at most 63 letters, digits, `-`, `_` and `.`.
///
/// # Errors
/// What was expected, for a message.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_name(value)) {
        return Ok(());
    }
    Err(format!(
        "expected a label value (empty, or at most 63 letters, digits, '-', '_' and '.', \
         starting and ending with a letter or digit), got {}",
        quote(value)
    ))
}

/// An environment variable name: printable ASCII without `=` (the API server's rule since
/// Kubernetes 1.32).
///
/// # Errors
/// What was expected, for a message.
pub fn env_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|c| (b' '..=b'~').contains(&c) && c != b'=')
    {
        return Ok(());
    }
    Err(format!(
        "expected an environment variable name (printable ASCII characters except '='), got {}",
        quote(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns_label("team-a").is_ok());
        assert!(dns_label("Team").is_err());
        assert!(dns_label("-a").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
        assert!(dns_subdomain("a.b-c", false).is_ok());
        assert!(dns_subdomain("a..b", false).is_err());
        assert!(dns_subdomain("job-", true).is_ok());
        assert!(dns_subdomain("job-", false).is_err());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("a b").is_err());
        assert!(label_key("/x").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v_1.2").is_ok());
        assert!(label_value("a b").is_err());
        assert!(env_name("MY_VAR.x-1").is_ok());
        assert!(env_name("A=B").is_err());
        assert!(env_name("").is_err());
        assert!(env_name("tab\t").is_err());
    }

    #[test]
    fn quotes_are_cut_in_the_middle() {
        let long = format!("{}{}", "é".repeat(100), "tag");
        let q = quote(&long);
        assert!(q.ends_with("tag\""), "{q}");
        assert_eq!(q.chars().filter(|c| *c == '…').count(), 1);
        assert_eq!(q.chars().count(), QUOTE_CHARS + 2);
        assert_eq!(quote("a\"b"), r#""a\"b""#);
        assert_eq!(shorten("short", 10), "short");
        let path = std::path::PathBuf::from("/x".repeat(2500) + "/job.yaml");
        let shown = shown_path(&path);
        assert_eq!(shown.chars().count(), PATH_CHARS);
        assert!(
            shown.starts_with("/x/x") && shown.ends_with("/job.yaml"),
            "{shown}"
        );
    }
}
