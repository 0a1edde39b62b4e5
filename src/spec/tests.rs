use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// A bound that only catches a hang: these parses take ~1.4 s at most in a debug build on a
/// loaded 2-core machine. Their speed is measured in `bench/`.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn err(text: &str) -> String {
    from_yaml(text, Some(Path::new("job.yaml")))
        .unwrap_err()
        .to_string()
}

#[test]
fn fills_missing_kind_and_api_version() {
    let v = from_yaml("metadata:\n  name: x\n", None).unwrap();
    assert_eq!(v["kind"], "Job");
    assert_eq!(v["apiVersion"], "batch/v1");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let e = err("apiVersion: batch/v1\nkind: Job\nspec:\n  template: [unclosed\n");
    assert!(e.starts_with("job.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = err("a: b\n  c: d\n");
    assert!(e.starts_with("job.yaml:"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn shape_errors_name_the_field_path_and_position() {
    let e = err(
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      containers: 3\n",
    );
    assert_eq!(e, "job.yaml:6:19: spec.template.spec.containers: expected a list of containers, got an integer");
    let e = err("spec:\n  template:\n    spec:\n      containers:\n      - name: a\n      - just-a-string\n");
    assert!(
        e.contains(
            "spec.template.spec.containers[1]: expected a container (a mapping), got a string"
        ),
        "{e}"
    );
    assert!(e.starts_with("job.yaml:6:"), "{e}");
    let e = err("spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        env:\n        - name: X\n          value: 5\n");
    assert!(
        e.contains(
            "spec.template.spec.containers[0].env[0].value: expected a string, got an integer"
        ),
        "{e}"
    );
    let e = err("metadata:\n  labels:\n    a: 1\n");
    assert!(
        e.contains("metadata.labels.a: expected a string, got an integer"),
        "{e}"
    );
}

#[test]
fn wrong_kind_and_api_version() {
    assert!(err("kind: Pod\n").contains("kind: expected \"Job\", got \"Pod\""));
    assert!(err("apiVersion: v1\nkind: Job\n")
        .contains("apiVersion: expected \"batch/v1\", got \"v1\""));
}

#[test]
fn empty_list_and_multi_document() {
    assert!(err("").contains("the job spec is empty"), "{}", err(""));
    assert!(err("# only a comment\n").contains("the job spec is empty"));
    assert!(err("- a\n- b\n").contains("expected a Kubernetes Job (a mapping), got a list"));
    let e = err("kind: Job\n---\nkind: Job\n");
    assert!(e.contains("several YAML documents"), "{e}");
}

#[test]
fn alias_bomb_fails_fast() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
    let mut prev = "a";
    for n in names {
        text.push_str(&format!(
            "{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = n;
    }
    // The parser's budget refuses it (a count of replayed events, not a clock); the time bound
    // only guards against a hang.
    let start = Instant::now();
    let e = err(&text);
    assert!(start.elapsed() < HANG_GUARD, "took {:?}", start.elapsed());
    assert!(e.starts_with("job.yaml"), "{e}");
    assert!(e.contains("budget breached"), "{e}");
}

#[test]
fn deep_nesting_fails_fast() {
    let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let start = Instant::now();
    let e = err(&text);
    assert!(start.elapsed() < HANG_GUARD, "took {:?}", start.elapsed());
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn files_missing_directory_and_non_utf8() {
    let missing = from_file(Path::new("/nonexistent/job.yaml")).unwrap_err();
    assert!(matches!(missing, Error::FileNotFound { .. }));
    assert_eq!(
        missing.to_string(),
        "job spec file not found: /nonexistent/job.yaml"
    );
    let dir = std::env::temp_dir().join(format!("kjenv-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(from_file(&dir)
        .unwrap_err()
        .to_string()
        .contains("got a directory"));
    let bin = dir.join("bin.yaml");
    std::fs::write(&bin, b"kind: Job\nx: \xff\xfe\n").unwrap();
    let e = from_file(&bin).unwrap_err().to_string();
    assert!(
        e.contains("not valid UTF-8") && e.contains("bin.yaml"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn value_errors_name_the_path() {
    let e =
        from_value(serde_json::json!({"spec": {"template": {"spec": {"containers": {"a": 1}}}}}))
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.template.spec.containers: expected a list of containers, got a mapping"
    );
}

#[test]
fn filled_in_kind_and_api_version_come_first() {
    let v = from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata"]);
}

#[test]
fn integers_beyond_64_bits_are_refused_where_they_are() {
    let e = err("kind: Job\nspec:\n  backoffLimit: 99999999999999999999999999999\n");
    assert!(
        e.starts_with(
            "job.yaml:3:17: spec.backoffLimit: the integer 99999999999999999999999999999 does \
             not fit in 64 bits"
        ),
        "{e}"
    );
    let e = err("kind: Job\nspec:\n  x: [1, {y: -9223372036854775809}]\n");
    assert!(
        e.contains(": spec.x[1].y: the integer -9223372036854775809 "),
        "{e}"
    );
    // Too large even for a float (the parser refuses it): the same message, shortened.
    let e = err(&format!("kind: Job\nspec:\n  x: {}\n", "9".repeat(5000)));
    assert!(
        e.contains("the integer 9999") && e.contains("does not fit in 64 bits"),
        "{e}"
    );
    assert!(e.len() < 300, "{e}");
    let e = err(&format!("kind: Job\nspec:\n  x: 1e{}\n", "9".repeat(5000)));
    assert!(e.contains("non-finite float") && e.len() < 300, "{e}");
}

#[test]
fn numbers_within_64_bits_and_floats_stay_as_written() {
    let v = from_yaml(
        "spec:\n  a: 18446744073709551615\n  b: -9223372036854775808\n  c: 1e29\n  d: 2.5\n",
        None,
    )
    .unwrap();
    assert_eq!(v["spec"]["a"].as_u64(), Some(u64::MAX));
    assert_eq!(v["spec"]["b"].as_i64(), Some(i64::MIN));
    assert_eq!(v["spec"]["c"].as_f64(), Some(1e29));
    assert_eq!(v["spec"]["d"].as_f64(), Some(2.5));
    // A quoted number is a string, whatever its size.
    let v = from_yaml("spec:\n  a: \"99999999999999999999999\"\n", None).unwrap();
    assert_eq!(v["spec"]["a"], "99999999999999999999999");
}
