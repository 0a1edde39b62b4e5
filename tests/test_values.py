"""Values kept exactly or refused (issue 14, classes 8 and 10): numbers in a spec, NaN and
infinity, control characters in every string argument, the types of ``metadata`` and
``labels``, and messages that stay one short line however long the value they echo."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from kjenv import JobSpecError, KubernetesJobEnvironment

MINIMAL = str(Path(__file__).parent / "fixtures" / "minimal.yaml")
# A message is one line and names the problem in at most about 300 characters.
MAX_MESSAGE = 300


def _job(**spec) -> dict:
    containers = [{"name": "flow", "image": "img"}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {**spec, "template": {"spec": {"containers": containers}}},
    }


def _short(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message, message
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:400]}"
    return message


# -- class 8: numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("number", [10**29, -(10**20), 2**64, -(2**63) - 1])
def test_a_dict_integer_beyond_64_bits_is_refused_naming_the_field(number):
    with pytest.raises(JobSpecError) as info:
        KubernetesJobEnvironment(job_spec=_job(backoffLimit=number))
    message = _short(info.value)
    assert info.value.field == "spec.backoffLimit"
    assert message.startswith("spec.backoffLimit: the integer "), message
    assert "64 bits" in message


def test_a_huge_dict_integer_is_refused_in_one_short_line():
    with pytest.raises(JobSpecError) as info:
        KubernetesJobEnvironment(job_spec=_job(parallelism=10**5000))
    assert info.value.field == "spec.parallelism"
    _short(info.value)


@pytest.mark.parametrize("number", [2**63 - 1, -(2**63), 2**64 - 1, 0, -1])
def test_dict_integers_within_64_bits_stay_exact(number):
    job = KubernetesJobEnvironment(job_spec=_job(backoffLimit=number)).render(image="i")
    assert job["spec"]["backoffLimit"] == number
    assert type(job["spec"]["backoffLimit"]) is int


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_in_a_dict_are_refused_naming_the_field(value):
    spec = _job()
    spec["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": value}}
    with pytest.raises(JobSpecError) as info:
        KubernetesJobEnvironment(job_spec=spec)
    field = "spec.template.spec.containers[0].resources.limits.cpu"
    assert info.value.field == field
    message = _short(info.value)
    assert message.startswith(f"{field}: expected a finite number"), message


def test_nan_in_a_list_names_its_index():
    spec = _job()
    spec["spec"]["template"]["spec"]["containers"][0]["x"] = [1.5, float("nan")]
    with pytest.raises(JobSpecError) as info:
        KubernetesJobEnvironment(job_spec=spec)
    assert info.value.field == "spec.template.spec.containers[0].x[1]"


def test_finite_floats_stay():
    job = KubernetesJobEnvironment(job_spec=_job(x=1.5, y=1e29)).render(image="i")
    assert (job["spec"]["x"], job["spec"]["y"]) == (1.5, 1e29)


def test_an_unpickled_spec_is_checked_the_same_way():
    env = KubernetesJobEnvironment(job_spec=_job())
    state = env.__getstate__()
    state["job_spec"]["spec"]["backoffLimit"] = 10**29
    with pytest.raises(JobSpecError, match="spec.backoffLimit: the integer"):
        KubernetesJobEnvironment.__new__(KubernetesJobEnvironment).__setstate__(state)


YAML_BIG = """\
apiVersion: batch/v1
kind: Job
spec:
  backoffLimit: {number}
"""


@pytest.mark.parametrize(
    "number",
    ["99999999999999999999999999999", "18446744073709551616", "-9223372036854775809"],
)
def test_a_yaml_integer_beyond_64_bits_is_refused_with_its_position(number):
    with pytest.raises(JobSpecError) as info:
        KubernetesJobEnvironment(job_spec=YAML_BIG.format(number=number))
    message = _short(info.value)
    assert info.value.field == "spec.backoffLimit"
    assert (info.value.line, info.value.column) == (4, 17)
    assert f"the integer {number} does not fit in 64 bits" in message, message


@pytest.mark.parametrize(
    "literal, value",
    [("18446744073709551615", 2**64 - 1), ("-9223372036854775808", -(2**63)), ("1e29", 1e29)],
)
def test_yaml_numbers_within_range_stay_exact(literal, value):
    job = KubernetesJobEnvironment(job_spec=YAML_BIG.format(number=literal)).render(image="i")
    assert job["spec"]["backoffLimit"] == value
    assert type(job["spec"]["backoffLimit"]) is type(value)


# -- class 8: one rule for control characters -------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"flow_file_path": "/flows/a\x00b.py"}, "flow_file_path"),
        ({"flow_file_path": "/flows/a\nb.py"}, "flow_file_path"),
        ({"image": "img\x00"}, "image"),
        ({"flow_run_id": "run\x00"}, "flow_run_id"),
        ({"namespace": "ns\x00"}, "namespace"),
    ],
)
def test_every_render_argument_refuses_control_characters(kwargs, field):
    with pytest.raises(ValueError) as info:
        KubernetesJobEnvironment(MINIMAL).render(**{"image": "img", **kwargs})
    message = _short(info.value)
    assert message.startswith(f"{field}: expected "), message
    assert "control characters" in message or "DNS-1123" in message or "label" in message


def test_a_flow_file_path_from_the_environment_is_checked(monkeypatch):
    # The environment cannot hold a NUL; a newline is a control character too.
    monkeypatch.setenv("PREFECT__CONTEXT__FLOW_FILE_PATH", "/a\nb")
    with pytest.raises(ValueError, match=r"\(from PREFECT__CONTEXT__FLOW_FILE_PATH\)"):
        KubernetesJobEnvironment(MINIMAL).render(image="img")


@pytest.mark.parametrize(
    "init, field",
    [
        ({"context": "dev\x00"}, "context"),
        ({"context": "dev\r\nX-Evil: 1"}, "context"),
        ({"kubeconfig": "/tmp/kube\x00config"}, "kubeconfig"),
        ({"job_spec_file": "/tmp/job\x00.yaml"}, "job_spec_file"),
    ],
)
def test_every_init_argument_refuses_control_characters(init, field):
    init = {"job_spec_file": MINIMAL, **init}
    with pytest.raises(ValueError) as info:
        KubernetesJobEnvironment(**init)
    message = _short(info.value)
    assert message.startswith(f"{field}: expected text without control characters"), message


def test_a_path_with_spaces_is_still_fine():
    job = KubernetesJobEnvironment(MINIMAL).render(image="img", flow_file_path="/my flows/f.py")
    flow = job["spec"]["template"]["spec"]["containers"][0]
    assert "/my flows/f.py" in {e.get("value") for e in flow["env"]}


# -- class 10: messages, metadata, labels ------------------------------------------------------


def test_a_very_long_spec_path_is_shortened_in_the_middle(tmp_path):
    # 3,000 characters: under PATH_MAX, so the error is "not found", not "name too long".
    path = "/nonexistent" + "/x" * 1500 + "/job.yaml"
    with pytest.raises(FileNotFoundError) as info:
        KubernetesJobEnvironment(path)
    message = _short(info.value)
    assert "…" in message and message.rstrip("'").endswith("/job.yaml"), message


def test_a_very_long_unreadable_spec_path_is_shortened(tmp_path):
    path = str(tmp_path) + "/d" * 2500 + "/job.yaml"
    with pytest.raises(OSError) as info:
        KubernetesJobEnvironment(path)
    message = _short(info.value)
    assert "/job.yaml" in message


def test_a_long_image_is_shortened_in_the_middle():
    image = "registry.example/" + "a b" * 2000 + ":tag-1"
    with pytest.raises(ValueError) as info:
        KubernetesJobEnvironment(MINIMAL).render(image=image)
    message = _short(info.value)
    assert ':tag-1"' in message and "…" in message, message


@pytest.mark.parametrize("value, type_name", [(5, "int"), (["img"], "list"), (b"img", "bytes")])
def test_metadata_image_of_the_wrong_type_is_a_type_error(value, type_name):
    with pytest.raises(TypeError) as info:
        KubernetesJobEnvironment(MINIMAL, metadata={"image": value})
    message = _short(info.value)
    assert message.startswith('metadata["image"]: expected a string'), message
    assert type_name in message


def test_metadata_image_changed_later_is_checked_when_rendering():
    env = KubernetesJobEnvironment(MINIMAL, metadata={"image": "img"})
    env.metadata["image"] = 5
    with pytest.raises(TypeError, match=r'metadata\["image"\]: expected a string.*int'):
        env.render()


@pytest.mark.parametrize("metadata", ["x", [1], 5, ("image", "img")])
def test_metadata_must_be_a_dict(metadata):
    with pytest.raises(TypeError) as info:
        KubernetesJobEnvironment(MINIMAL, metadata=metadata)
    assert _short(info.value).startswith("metadata: expected a dict"), str(info.value)
    env = KubernetesJobEnvironment(MINIMAL)
    with pytest.raises(TypeError, match="metadata: expected a dict"):
        env.metadata = metadata


def test_metadata_none_is_the_empty_dict_and_a_dict_is_kept():
    assert KubernetesJobEnvironment(MINIMAL, metadata=None).metadata == {}
    env = KubernetesJobEnvironment(MINIMAL, metadata={"image": "img", "other": [1]})
    assert env.render()["spec"]["template"]["spec"]["containers"][0]["image"] == "img"
    env.metadata = {"image": None}
    assert env.render(image="x")["spec"]["template"]["spec"]["containers"][0]["image"] == "x"


@pytest.mark.parametrize("labels, shown", [([1, None], "1"), (["ok", None], "None")])
def test_labels_must_be_strings_naming_the_bad_one(labels, shown):
    with pytest.raises(TypeError) as info:
        KubernetesJobEnvironment(MINIMAL, labels=labels)
    message = _short(info.value)
    assert message.startswith("labels: expected label strings, got "), message
    assert shown in message
    env = KubernetesJobEnvironment(MINIMAL, labels=["a"])
    with pytest.raises(TypeError, match="labels: expected label strings"):
        env.labels = labels
    assert env.labels == {"a"}


def test_valid_labels_and_metadata_serialize_as_before():
    env = KubernetesJobEnvironment(MINIMAL, labels=("b", "a", "b"), metadata={"k": 1})
    assert env.serialize() == {
        "type": "KubernetesJobEnvironment",
        "labels": ["a", "b"],
        "metadata": {"k": 1},
    }
    again = pickle.loads(pickle.dumps(env))
    assert again.serialize() == env.serialize()
