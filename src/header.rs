//! What may travel in an HTTP header (a leaf: the kubeconfig's checks and the credential
//! plugin's answer both use it).

/// Whether `value` can be sent in an HTTP header as is: visible ASCII, spaces and tabs. kube
/// builds its headers with `HeaderValue` and panics on anything else (a CR/LF in a token).
pub(crate) fn header_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_not_header_safe() {
        assert!(super::header_safe("Bearer abc\tdef"));
        for bad in ["a\r\nb", "a\0b", "é"] {
            assert!(!super::header_safe(bad), "{bad:?}");
        }
    }
}
