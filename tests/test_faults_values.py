"""execute() refuses a bad argument or value before its first request (issue 14, classes 7, 8
and 10): in Cloud mode, where an accepted call creates a Secret and a Job, each refusal leaves
exactly the Jobs and Secrets that were there before, as the official client lists them."""

from __future__ import annotations

import uuid

import pytest
from kube_cluster import auth_token, job_spec, local_kube, unique

from kjenv import JobSpecError, KubernetesJobEnvironment

TOKEN = "values-token-not-for-anyone"
# A hang guard only: each refusal takes milliseconds.
HANG = 60


@pytest.fixture
def cloud(monkeypatch):
    """Cloud mode: an accepted execute creates the run's Secret as well as its Job."""
    with auth_token(monkeypatch, TOKEN):
        yield


@pytest.fixture
def kube(local_cluster):
    local_cluster.clear_faults()
    return local_kube(local_cluster)


def _objects(kube) -> tuple[set[str], set[str]]:
    """Every Job and Secret in the test namespace, by name, listed with the official client."""
    core, batch = kube.client()
    jobs = {j.metadata.name for j in batch.list_namespaced_job(kube.namespace).items}
    secrets = {s.metadata.name for s in core.list_namespaced_secret(kube.namespace).items}
    return jobs, secrets


def _run_id() -> str:
    return f"run-{uuid.uuid4().hex[:12]}"


def _refused(kube, env: KubernetesJobEnvironment, expected: type[BaseException], **kwargs):
    """execute(**kwargs) raises `expected` in one line and leaves the cluster as it was."""
    before = _objects(kube)
    kwargs = {"image": kube.image, "namespace": kube.namespace, **kwargs}
    with pytest.raises(expected) as info:
        env.execute(**kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) <= 300, message
    assert TOKEN not in message
    assert _objects(kube) == before, "a refused execute() left a Job or a Secret"
    return message


BAD_ARGUMENTS = [
    ({"flow_location": "/flows/a\x00b.py"}, ValueError, "flow_file_path: expected text"),
    ({"flow_location": "/flows/a\nb.py"}, ValueError, "flow_file_path: expected text"),
    ({"flow_location": 5}, TypeError, "flow_location"),
    ({"image": "img\x00"}, ValueError, "image: expected an image reference"),
    ({"image": 5}, TypeError, "image"),
    ({"flow_run_id": "run\x00"}, ValueError, "flow_run_id: expected a label value"),
    ({"flow_run_id": 5}, TypeError, "flow_run_id"),
    ({"namespace": "Bad NS"}, ValueError, "namespace: expected a DNS-1123 label"),
    ({"namespace": ["ns"]}, TypeError, "namespace"),
    ({"wait": "yes"}, TypeError, "wait"),
    ({"stream_logs": 1}, TypeError, "stream_logs"),
    ({"wait": True, "timeout": -1}, ValueError, "timeout"),
    ({"wait": True, "timeout": float("nan")}, ValueError, "timeout"),
]


@pytest.mark.parametrize(
    "kwargs, expected, words", BAD_ARGUMENTS, ids=[repr(k)[:40] for k, _, _ in BAD_ARGUMENTS]
)
def test_a_bad_execute_argument_creates_nothing(kube, cloud, kwargs, expected, words):
    env = kube.env(job_spec(unique("values-arg")))
    kwargs = {"flow_run_id": _run_id(), **kwargs}
    message = _refused(kube, env, expected, **kwargs)
    # pyo3 names a mistyped argument in a note, not in the message.
    assert words in message or expected is TypeError, message


def test_a_bad_value_from_the_environment_creates_nothing(kube, cloud, monkeypatch):
    monkeypatch.setenv("PREFECT__CONTEXT__FLOW_FILE_PATH", "/flows/a\nb.py")
    env = kube.env(job_spec(unique("values-env")))
    message = _refused(kube, env, ValueError, flow_run_id=_run_id())
    assert message.endswith("(from PREFECT__CONTEXT__FLOW_FILE_PATH)"), message


def test_metadata_image_of_the_wrong_type_creates_nothing(kube, cloud):
    env = kube.env(job_spec(unique("values-meta")))
    env.metadata["image"] = 5
    message = _refused(kube, env, TypeError, image=None, flow_run_id=_run_id())
    assert message.startswith('metadata["image"]: expected a string'), message


def test_nan_in_a_spec_is_refused_before_anything_is_created(kube, cloud):
    spec = job_spec(unique("values-nan"))
    spec["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": float("nan")}
    }
    before = _objects(kube)
    with pytest.raises(JobSpecError, match="expected a finite number"):
        kube.env(spec).execute(image=kube.image, flow_run_id=_run_id())
    assert _objects(kube) == before


def test_a_yaml_integer_beyond_64_bits_is_refused_before_anything_is_created(kube, cloud):
    name = unique("values-bigint")
    text = (
        "apiVersion: batch/v1\nkind: Job\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n  backoffLimit: 99999999999999999999999999999\n"
        "  template:\n    spec:\n      containers:\n      - name: flow\n"
    )
    before = _objects(kube)
    with pytest.raises(JobSpecError, match="does not fit in 64 bits"):
        KubernetesJobEnvironment(job_spec=text, kubeconfig=kube.kubeconfig).execute(
            image=kube.image, flow_run_id=_run_id()
        )
    assert _objects(kube) == before
