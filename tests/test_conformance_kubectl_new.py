"""Conformance: kubectl 1.20.2 and the machine's newer kubectl against the local cluster.

The newer kubectl is ``$KJENV_KUBECTL_NEW`` or ``/usr/bin/kubectl``. On these machines that is
Google Cloud SDK's dispatcher (``v1.32.4-dispatcher``), which runs the kubectl matching the
server's minor version: against the local cluster (v1.33) that is kubectl v1.33.1. The fixture
asks the server-facing binary for its version and requires >= 1.27, the first to send
``fieldValidation=Strict`` and to read ``/openapi/v3`` for ``explain``; 1.32 and later also
send protobuf bodies for built-in types. ``KJENV_KUBECTL_NEW`` may name any kubectl >= 1.27
(e.g. the SDK's ``kubectl.1.27``). Neither binary may be missing (the tests fail, never skip).
"""

from __future__ import annotations

import json
import os
import re

import pytest
from kube_cluster import unique
from kube_cluster import wait_until as poll
from test_conformance_kubectl import Kubectl, job_manifest, kubectl_binary, write_manifest

PROTOBUF = "application/vnd.kubernetes.protobuf"
# The first kubectl minor that sends `create` bodies as protobuf (1.31 still sends JSON).
PROTOBUF_SINCE = 32


def new_kubectl_binary() -> str:
    """The newer kubectl; fails the test (never skips) when it is missing."""
    path = os.environ.get("KJENV_KUBECTL_NEW", "/usr/bin/kubectl")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no newer kubectl at {path} (set KJENV_KUBECTL_NEW)", pytrace=False)
    return path


def make_kubectl(which: str, local_cluster, tmp_path_factory) -> Kubectl:
    """kubectl 1.20.2 (``which="1.20"``) or the newer kubectl (``"new"``), with a fresh HOME;
    ``.minor`` is the minor version of the binary that talks to the cluster (after any
    dispatching)."""
    binary = kubectl_binary() if which == "1.20" else new_kubectl_binary()
    home = tmp_path_factory.mktemp(f"kubectl-{which}")
    k = Kubectl(binary, local_cluster.kubeconfig, home)
    version = json.loads(k.run("version", "-o", "json").stdout)["clientVersion"]["gitVersion"]
    minor = int(re.match(r"v1\.(\d+)\.", version).group(1))
    if which == "1.20":
        assert version == "v1.20.2", f"{binary} is not kubectl 1.20.2: {version}"
    else:
        assert minor >= 27, f"{binary} talks to the cluster as {version}, older than 1.27"
    k.minor = minor
    return k


@pytest.fixture(scope="module", params=["1.20", "new"])
def kubectl(request, local_cluster, tmp_path_factory) -> Kubectl:
    """kubectl 1.20.2, then the newer kubectl (``make_kubectl``)."""
    return make_kubectl(request.param, local_cluster, tmp_path_factory)


def get_json(kubectl: Kubectl, *args: str) -> dict:
    return json.loads(kubectl.run("get", *args, "-o", "json").stdout)


def wait_complete(kubectl: Kubectl, name: str) -> dict:
    def done():
        job = get_json(kubectl, "job", name)
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions) and job

    return poll(done, timeout=60, what=f"Job {name} to complete")


def sent_protobuf(proc) -> bool:
    """Whether a ``-v=8`` run sent a protobuf request body."""
    return f"Content-Type: {PROTOBUF}" in proc.stderr


def test_create_job_secret_configmap_namespace(kubectl):
    """``kubectl create job|secret generic|configmap|namespace``: kubectl >= 1.32 sends these as
    protobuf, and each object lands as a JSON client would have made it."""
    job, secret, cm, ns = (unique(p) for p in ("kn-job", "kn-secret", "kn-cm", "kn-ns"))
    run = kubectl.run("create", "job", job, "--image=busybox", "-v=8", "--", "sh", "-c", "echo hi")
    assert run.stdout.strip() == f"job.batch/{job} created"
    assert sent_protobuf(run) == (kubectl.minor >= PROTOBUF_SINCE)
    run = kubectl.run("create", "secret", "generic", secret, "--from-literal=token=s3cr3t", "-v=8")
    assert run.stdout.strip() == f"secret/{secret} created"
    assert sent_protobuf(run) == (kubectl.minor >= PROTOBUF_SINCE)
    out = kubectl.run("create", "configmap", cm, "--from-literal=key=value").stdout
    assert out.strip() == f"configmap/{cm} created"
    assert kubectl.run("create", "namespace", ns).stdout.strip() == f"namespace/{ns} created"

    done = wait_complete(kubectl, job)
    container = done["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "echo hi"]
    assert container["image"] == "busybox"
    assert done["spec"]["backoffLimit"] == 6
    assert done["status"]["succeeded"] == 1
    assert kubectl.run("logs", f"job/{job}").stdout == "hi\n"
    assert get_json(kubectl, "secret", secret)["data"] == {"token": "czNjcjN0"}
    assert get_json(kubectl, "secret", secret)["type"] == "Opaque"
    assert get_json(kubectl, "configmap", cm)["data"] == {"key": "value"}
    namespace = get_json(kubectl, "namespace", ns)
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": ns}
    kubectl.run("delete", "namespace", ns)
    kubectl.run("delete", "job", job, "--cascade=background")


def test_explain_job_spec(kubectl):
    """``kubectl explain`` reads the real API server's OpenAPI (v2 protobuf for 1.20, v3 after)."""
    out = kubectl.run("explain", "job.spec").stdout
    assert re.search(r"KIND:\s+Job", out)
    assert "backoffLimit\t<integer>" in out or re.search(r"backoffLimit\s+<integer>", out)
    assert "template\t<PodTemplateSpec> -required-" in out or re.search(
        r"template\s+<(PodTemplateSpec|Object)> -required-", out
    )
    field = kubectl.run("explain", "job.spec.backoffLimit").stdout
    assert "Specifies the number of retries before marking this job failed." in field


def typo_manifest(tmp_path, name: str) -> str:
    manifest = job_manifest(name, "true")
    manifest["spec"]["template"]["spec"]["containers"][0]["comand"] = ["sh", "-c", "true"]
    return write_manifest(tmp_path, manifest, "typo.yaml")


def test_a_typo_in_a_job_is_refused(kubectl, tmp_path):
    """A typo (``comand``) is refused: by kubectl 1.20 itself against the served OpenAPI v2, by
    the server for newer kubectl (``fieldValidation=Strict``), in the real servers' words."""
    name = unique("kn-typo")
    path = typo_manifest(tmp_path, name)
    refused = kubectl.run("create", "-f", path, check=False)
    assert refused.returncode == 1
    if kubectl.minor >= 27:
        assert refused.stderr.strip() == (
            f'Error from server (BadRequest): error when creating "{path}": Job in version "v1" '
            "cannot be handled as a Job: strict decoding error: unknown field "
            '"spec.template.spec.containers[0].comand"'
        )
    else:
        assert refused.stderr.strip() == (
            f'error: error validating "{path}": error validating data: '
            "ValidationError(Job.spec.template.spec.containers[0]): unknown field "
            '"comand" in io.k8s.api.core.v1.Container; if you choose to ignore these errors, '
            "turn validation off with --validate=false"
        )
    assert kubectl.run("get", "job", name, check=False).returncode == 1, "nothing was created"

    # Without validation: created, a warning for the field, and the field dropped.
    flag = "--validate=warn" if kubectl.minor >= 27 else "--validate=false"
    created = kubectl.run("create", "-f", path, flag)
    assert created.stdout.strip() == f"job.batch/{name} created"
    warning = 'Warning: unknown field "spec.template.spec.containers[0].comand"'
    assert warning in created.stderr
    container = get_json(kubectl, "job", name)["spec"]["template"]["spec"]["containers"][0]
    assert "comand" not in container
    kubectl.run("delete", "job", name, "--cascade=background")


def test_apply_a_job_then_get_and_describe(kubectl, tmp_path):
    """``apply`` creates, configures and leaves unchanged; ``get`` and ``describe`` show it."""
    name = unique("kn-apply")
    manifest = job_manifest(name, "echo applied")
    path = write_manifest(tmp_path, manifest)
    assert kubectl.run("apply", "-f", path).stdout.strip() == f"job.batch/{name} created"
    manifest["metadata"]["labels"] = {"stage": "two"}
    write_manifest(tmp_path, manifest)
    assert kubectl.run("apply", "-f", path).stdout.strip() == f"job.batch/{name} configured"
    assert kubectl.run("apply", "-f", path).stdout.strip() == f"job.batch/{name} unchanged"
    job = wait_complete(kubectl, name)
    assert job["metadata"]["labels"]["stage"] == "two"
    applied = json.loads(
        job["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert applied["metadata"]["labels"] == {"stage": "two"}

    table = kubectl.run("get", "job", name).stdout.splitlines()
    assert table[0].split()[0] == "NAME"
    assert table[1].split()[0] == name
    described = kubectl.run("describe", "job", name).stdout
    assert re.search(rf"^Name:\s+{name}$", described, re.M)
    assert re.search(r"^Namespace:\s+default$", described, re.M)
    assert re.search(r"^Completions:\s+1$", described, re.M)
    statuses = r"^Pods Statuses:\s+0 (Active|Running) .*1 Succeeded / 0 Failed$"
    assert re.search(statuses, described, re.M)
    kubectl.run("delete", "job", name, "--cascade=background")
