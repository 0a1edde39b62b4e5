//! kube-apiserver's answer to a body that is not JSON: `the object provided is unrecognized
//! (must be of type Job): couldn't get version/kind; json parse error: <Go's encoding/json
//! text> (<the body's first 30 bytes>)`, with serde_json's error turned into the words Go's
//! scanner uses for the same mistake.

use serde_json::error::Category;

/// How many bytes of the body the message shows (the API server's `summarizeData`).
const SUMMARY_BYTES: usize = 30;

/// The whole message for a body of `kind` that serde_json could not parse.
pub fn unrecognized(kind: &str, body: &[u8], err: &serde_json::Error) -> String {
    format!(
        "the object provided is unrecognized (must be of type {kind}): couldn't get \
         version/kind; json parse error: {} ({})",
        go_json_error(body, err),
        summarize(body)
    )
}

/// The body as the message shows it: text when it looks like JSON, else hex; cut to
/// [`SUMMARY_BYTES`] with ` ...`.
fn summarize(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty>".to_owned();
    }
    let cut = &body[..body.len().min(SUMMARY_BYTES)];
    let more = if body.len() > SUMMARY_BYTES {
        " ..."
    } else {
        ""
    };
    let shown = if body[0] == b'{' {
        String::from_utf8_lossy(cut).into_owned()
    } else {
        cut.iter().map(|b| format!("{b:02x}")).collect()
    };
    format!("{shown}{more}")
}

/// Go's `encoding/json` text for the error serde_json found.
fn go_json_error(body: &[u8], err: &serde_json::Error) -> String {
    if err.classify() == Category::Eof {
        return "unexpected end of JSON input".to_owned();
    }
    let text = err.to_string();
    let context = [
        ("expected value", "looking for beginning of value"),
        (
            "key must be a string",
            "looking for beginning of object key string",
        ),
        ("expected `:`", "after object key"),
        ("expected `,` or `}`", "after object key:value pair"),
        ("expected `,` or `]`", "after array element"),
        ("trailing characters", "after top-level value"),
    ]
    .iter()
    .find(|(serde, _)| text.starts_with(serde))
    .map(|(_, go)| *go);
    match (context, byte_at(body, err.line(), err.column())) {
        (Some(go), Some(c)) => format!("invalid character {} {go}", quote_char(c)),
        _ => text,
    }
}

/// The byte at serde_json's 1-based line and column.
fn byte_at(body: &[u8], line: usize, column: usize) -> Option<u8> {
    let start: usize = body
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    body.get(start + column.checked_sub(1)?).copied()
}

/// Go's `quoteChar`: `'x'`, with `'\''` and `'"'` as Go writes them.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_owned(),
        b'"' => r#"'"'"#.to_owned(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        let err = serde_json::from_slice::<serde_json::Value>(body.as_bytes()).unwrap_err();
        unrecognized("Job", body.as_bytes(), &err)
    }

    #[test]
    fn a_cut_body_is_an_unexpected_end_with_its_first_30_bytes() {
        assert_eq!(
            message(r#"{"apiVersion": "batch/v1", "kind": "Job", "#),
            "the object provided is unrecognized (must be of type Job): couldn't get \
             version/kind; json parse error: unexpected end of JSON input \
             ({\"apiVersion\": \"batch/v1\", \"ki ...)"
        );
    }

    #[test]
    fn yaml_is_an_invalid_character_with_the_body_in_hex() {
        let m = message("apiVersion: v1\n");
        assert!(m.contains("json parse error: invalid character 'a' looking for beginning of value (61706956657273696f6e3a2076310a)"), "{m}");
    }

    #[test]
    fn a_missing_colon_is_named_after_the_object_key() {
        let m = message(r#"{"a" 1}"#);
        assert!(
            m.contains("invalid character '1' after object key ("),
            "{m}"
        );
    }
}
