"""Bad job specs give a JobSpecError that says where, fast, and never a panic."""

from __future__ import annotations

import time

import pytest

from kjenv import JobSpecError, KubernetesJobEnvironment

# A bound that only catches a hang (these parses take milliseconds); speed is for bench/.
HANG_GUARD = 30.0


def load(tmp_path, text: str | bytes):
    path = tmp_path / "job.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return KubernetesJobEnvironment(str(path))


CASES = [
    ("", "the job spec is empty", None),
    ("- a\n- b\n", "expected a Kubernetes Job (a mapping), got a list", None),
    ("kind: Job\n---\nkind: Job\n", "several YAML documents", None),
    ("kind: Pod\n", 'kind: expected "Job", got "Pod"', "kind"),
    ("apiVersion: v1\n", 'apiVersion: expected "batch/v1", got "v1"', "apiVersion"),
    (
        "spec:\n  template:\n    spec:\n      containers: 3\n",
        "spec.template.spec.containers: expected a list of containers, got an integer",
        "spec.template.spec.containers",
    ),
    (
        "spec:\n  template:\n    spec:\n      containers:\n      - 1\n",
        "spec.template.spec.containers[0]: expected a container (a mapping), got an integer",
        "spec.template.spec.containers[0]",
    ),
    (
        "spec:\n  template:\n    spec:\n      containers:\n      - name: a\n        env: x\n",
        "expected a list of environment variables, got a string",
        "spec.template.spec.containers[0].env",
    ),
    ("metadata: [1]\n", "metadata: expected a mapping (object metadata), got a list", "metadata"),
    ("spec: 1\n", "spec: expected a mapping (the Job spec), got an integer", "spec"),
]


@pytest.mark.parametrize("text,message,field", CASES)
def test_shape_errors(tmp_path, text, message, field):
    with pytest.raises(JobSpecError) as info:
        load(tmp_path, text)
    err = info.value
    assert message in str(err)
    assert str(err).startswith(str(tmp_path / "job.yaml"))
    assert err.file == str(tmp_path / "job.yaml")
    assert err.field == field
    assert "\n" not in str(err)


def test_syntax_error_has_line_and_column(tmp_path):
    with pytest.raises(JobSpecError) as info:
        load(tmp_path, "kind: Job\nspec:\n  template: [unclosed\n")
    err = info.value
    assert err.line is not None and err.column is not None
    assert f"job.yaml:{err.line}:{err.column}: invalid YAML" in str(err)


def test_field_position(tmp_path):
    with pytest.raises(JobSpecError) as info:
        load(tmp_path, "spec:\n  template:\n    spec:\n      containers: 3\n")
    assert (info.value.line, info.value.column) == (4, 19)


def test_non_utf8(tmp_path):
    with pytest.raises(JobSpecError, match="not valid UTF-8"):
        load(tmp_path, b"kind: Job\nx: \xff\n")


def test_alias_bomb_fails_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
        prev = name
    # The parser's budget (a count of replayed events) refuses it; the clock is a hang guard.
    start = time.perf_counter()
    with pytest.raises(JobSpecError, match="budget breached"):
        load(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - start < HANG_GUARD


def test_deep_nesting_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(JobSpecError, match="invalid YAML"):
        load(tmp_path, "a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert time.perf_counter() - start < HANG_GUARD


def test_too_large(tmp_path):
    with pytest.raises(JobSpecError, match="too large"):
        load(tmp_path, "x: " + "a" * (9 * 1024 * 1024))


def test_dict_errors_name_the_path():
    with pytest.raises(JobSpecError) as info:
        KubernetesJobEnvironment(job_spec={"spec": {"template": {"spec": {"containers": "x"}}}})
    assert info.value.field == "spec.template.spec.containers"
    assert info.value.file is None


def test_label_values_must_be_strings():
    with pytest.raises(JobSpecError, match=r"metadata.labels.n: expected a string, got an integer"):
        KubernetesJobEnvironment(job_spec="metadata:\n  labels:\n    n: 5\n")
