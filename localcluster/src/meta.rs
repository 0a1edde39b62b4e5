//! Object metadata decided once for the whole crate: the RFC 3339 "now" of `metav1.Time`,
//! whether an object is being deleted, and generated names (a leaf: no crate imports).

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;

/// Alphabet of generated name suffixes (no vowels, no look-alikes), as Kubernetes uses.
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// RFC 3339 with whole seconds, UTC, as Kubernetes prints `metav1.Time`
/// (`2024-01-02T03:04:05Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, as [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

/// Whether the object has a `deletionTimestamp` (graceful deletion or finalizers pending).
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// `prefix` cut to 58 characters plus 5 random characters, as `generateName` does.
pub fn generate_name(prefix: &str) -> String {
    let cut: String = prefix.chars().take(58).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{cut}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_whole_seconds_and_a_z() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678+00:00").unwrap();
        assert_eq!(rfc3339(t.with_timezone(&Utc)), "2024-01-02T03:04:05Z");
        assert_eq!(now_rfc3339().len(), 20);
    }

    #[test]
    fn deleting_means_a_non_null_deletion_timestamp() {
        assert!(is_deleting(
            &serde_json::json!({"metadata": {"deletionTimestamp": "x"}})
        ));
        assert!(!is_deleting(
            &serde_json::json!({"metadata": {"deletionTimestamp": null}})
        ));
        assert!(!is_deleting(&serde_json::json!({"metadata": {}})));
    }
}
