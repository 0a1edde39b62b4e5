"""Conformance: server-side apply on the local cluster, with kubectl 1.20.2, the machine's newer
kubectl (1.33) and the official Python client.

What kube-apiserver does, checked here: ``apply --server-side`` creates the object and records
its manager (operation ``Apply``) in ``metadata.managedFields``; another manager that changes a
field the first owns is refused with a 409 naming the field, unless it forces; a plain update
(``kubectl label``) becomes an ``Update`` manager of what it changed; an applier that stops
naming a field it owned alone removes it; a Job made by apply runs.
"""

from __future__ import annotations

import json

import kubernetes
import pytest
from kube_cluster import kube_fixture, unique  # noqa: F401 (kube_fixture: the `kube` fixture)
from test_conformance_kubectl import job_manifest, write_manifest
from test_conformance_kubectl_new import get_json, make_kubectl, wait_complete

APPLY = "application/apply-patch+yaml"


@pytest.fixture(scope="module", params=["1.20", "new"])
def kubectl(request, local_cluster, tmp_path_factory):
    """kubectl 1.20.2, then the machine's newer kubectl."""
    return make_kubectl(request.param, local_cluster, tmp_path_factory)


def get_managed(kubectl, *args: str) -> dict:
    """``get -o json`` with managedFields, which kubectl >= 1.21 hides unless asked."""
    flags = ["--show-managed-fields"] if kubectl.minor >= 21 else []
    return get_json(kubectl, *args, *flags)


def managers(obj: dict) -> dict[tuple[str, str], dict]:
    """``{(manager, operation): fieldsV1}`` of an object."""
    return {
        (e["manager"], e["operation"]): e["fieldsV1"]
        for e in obj["metadata"].get("managedFields") or []
    }


def test_apply_conflicts_force_and_ownership(kubectl, tmp_path):
    name = unique("ssa-job")
    manifest = job_manifest(name, "echo applied")
    manifest["metadata"]["labels"] = {"stage": "one", "team": "a"}
    path = write_manifest(tmp_path, manifest)
    run = kubectl.run("apply", "--server-side", "--field-manager=fid-one", "-f", path)
    assert run.stdout.strip() == f"job.batch/{name} serverside-applied"
    job = get_managed(kubectl, "job", name)
    owned = managers(job)[("fid-one", "Apply")]
    assert owned["f:metadata"]["f:labels"] == {"f:stage": {}, "f:team": {}}
    flow = owned["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"main"}']
    assert {".", "f:command", "f:image", "f:name"} <= set(flow)
    assert wait_complete(kubectl, name)["status"]["succeeded"] == 1

    other = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"stage": "two"}},
    }
    other_path = write_manifest(tmp_path, other, "other.yaml")
    refused = kubectl.run(
        "apply", "--server-side", "--field-manager=fid-two", "-f", other_path, check=False
    )
    assert refused.returncode != 0
    assert (
        'Apply failed with 1 conflict: conflict with "fid-one": .metadata.labels.stage'
        in refused.stderr
    )
    assert get_json(kubectl, "job", name)["metadata"]["labels"]["stage"] == "one"

    kubectl.run(
        "apply", "--server-side", "--field-manager=fid-two", "--force-conflicts", "-f", other_path
    )
    job = get_managed(kubectl, "job", name)
    assert job["metadata"]["labels"] == {"stage": "two", "team": "a"}
    fields = managers(job)
    assert fields[("fid-two", "Apply")]["f:metadata"]["f:labels"] == {"f:stage": {}}
    assert fields[("fid-one", "Apply")]["f:metadata"]["f:labels"] == {"f:team": {}}

    kubectl.run("label", "job", name, "extra=yes")
    job = get_managed(kubectl, "job", name)
    labels_updated = [
        f.get("f:metadata", {}).get("f:labels", {})
        for (_, op), f in managers(job).items()
        if op == "Update"
    ]
    assert any("f:extra" in labels for labels in labels_updated), managers(job)

    # fid-one stops naming its labels: team (its alone) goes; stage (fid-two's) and extra stay.
    del manifest["metadata"]["labels"]
    write_manifest(tmp_path, manifest)
    kubectl.run("apply", "--server-side", "--field-manager=fid-one", "-f", path)
    assert get_json(kubectl, "job", name)["metadata"]["labels"] == {"stage": "two", "extra": "yes"}
    kubectl.run("delete", "job", name, "--cascade=background")


def test_apply_a_configmap_twice_is_unchanged_and_dry_run_stores_nothing(kubectl, tmp_path):
    name = unique("ssa-cm")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}
    path = write_manifest(tmp_path, cm, "cm.yaml")
    kubectl.run("apply", "--server-side", "--dry-run=server", "-f", path)
    gone = kubectl.run("get", "configmap", name, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    kubectl.run("apply", "--server-side", "-f", path)
    first = get_json(kubectl, "configmap", name)
    kubectl.run("apply", "--server-side", "-f", path)
    again = get_managed(kubectl, "configmap", name)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert [e["operation"] for e in again["metadata"]["managedFields"]] == ["Apply"]
    kubectl.run("delete", "configmap", name)


def test_the_python_client_applies_and_gets_the_conflict_status(kube):
    """Runs on both clusters: the same answers from the local cluster and kube-apiserver."""
    (api, _), ns = kube.client(), kube.namespace
    ApiException = kubernetes.client.exceptions.ApiException
    name = unique("ssa-py")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}
    created = api.patch_namespaced_config_map(
        name, ns, body, field_manager="py-one", _content_type=APPLY
    )
    assert created.data == {"a": "1"}
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == [
        ("py-one", "Apply")
    ]
    body["data"] = {"a": "2"}
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_config_map(name, ns, body, field_manager="py-two", _content_type=APPLY)
    assert refused.value.status == 409
    status = json.loads(refused.value.body)
    assert status["reason"] == "Conflict"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "py-one"',
            "field": ".data.a",
        }
    ]
    forced = api.patch_namespaced_config_map(
        name, ns, body, field_manager="py-two", force=True, _content_type=APPLY
    )
    assert forced.data == {"a": "2"}
    with pytest.raises(ApiException) as no_manager:
        api.patch_namespaced_config_map(name, ns, body, _content_type=APPLY)
    assert no_manager.value.status == 422
    assert "fieldManager: Required value: is required for apply patch" in no_manager.value.body
    api.delete_namespaced_config_map(name, ns)
