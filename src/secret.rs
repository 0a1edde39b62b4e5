//! A string that never prints: auth tokens live in this type from the moment they enter kjenv.

use std::fmt;

/// A secret value (an auth token). `Debug` and `Display` print `<redacted>`; the only way to the
/// bytes is [`SecretString::expose`], used where the token goes into a Kubernetes Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap a secret; an empty string means "no secret" and gives `None`.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.is_empty()).then_some(SecretString(value))
    }

    /// The secret itself. Only for writing it where it belongs (a Secret's data).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = SecretString::new("tok-123").unwrap();
        assert!(!format!("{s:?} {s}").contains("tok-123"));
        assert_eq!(s.expose(), "tok-123");
        assert!(SecretString::new("").is_none());
    }
}
