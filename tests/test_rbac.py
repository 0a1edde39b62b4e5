"""examples/rbac.yaml is exactly what kjenv needs: every request kjenv sends in a submission's
life (create, adopt, wait with logs, status, events, delete, and the token Secret's create,
patch, adopt and clean-up) is granted by the Role, and every rule of the Role is used.

The local cluster records the requests it serves; each is mapped to its RBAC attributes (verb,
API group, resource/subresource) the way kube-apiserver's request-info resolver does.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import yaml
from kube_cluster import PrintFlow, auth_token, flow_file, job_spec, local_kube, unique

from kjenv import KubeApiError

ROLE_FILE = Path(__file__).parent.parent / "examples" / "rbac.yaml"


def role_rules() -> set[tuple[str, str, str]]:
    """The (API group, resource, verb) triples the Role grants."""
    docs = [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def attributes(method: str, path: str, query: str) -> tuple[str, str, str] | None:
    """RBAC attributes of a resource request; None for discovery and other non-resource paths
    (/version, /openapi, ...), which every authenticated user may read (system:discovery)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:  # /api/v1/...
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:  # /apis/GROUP/VERSION/...
        group, rest = parts[1] if len(parts) > 1 else "", parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2:3]
    params = urllib.parse.parse_qs(query)
    watching = params.get("watch", ["false"])[0] in ("true", "1")
    verb = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
        "GET": "watch" if watching else ("get" if name else "list"),
    }[method]
    return group, f"{resource}/{sub[0]}" if sub else resource, verb


def used_by(recorded: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    return {a for a in (attributes(*r) for r in recorded) if a is not None}


def test_attributes_follow_the_api_servers_rules():
    assert attributes("GET", "/apis/batch/v1/namespaces/ns/jobs", "watch=true") == (
        "batch",
        "jobs",
        "watch",
    )
    assert attributes("GET", "/apis/batch/v1/namespaces/ns/jobs/x", "") == ("batch", "jobs", "get")
    assert attributes("GET", "/api/v1/namespaces/ns/pods/p/log", "follow=true") == (
        "",
        "pods/log",
        "get",
    )
    assert attributes("DELETE", "/api/v1/namespaces/ns/pods", "") == (
        "",
        "pods",
        "deletecollection",
    )
    assert attributes("GET", "/apis/batch/v1", "") is None


@pytest.fixture
def recording(local_cluster):
    local_cluster.clear_faults()
    local_cluster.start_recording()
    yield local_cluster
    local_cluster.stop_recording()
    local_cluster.clear_faults()


def test_the_role_grants_every_request_and_every_rule_is_needed(recording, monkeypatch, tmp_path):
    k = local_kube(recording)
    path = flow_file(tmp_path, PrintFlow(["rbac check"]))
    with auth_token(monkeypatch, "rbac-token-not-for-anyone"):
        # A whole run in Cloud mode: Secret and Job created, waited on with logs, inspected,
        # deleted.
        name, run_id = unique("rbac"), unique("run")
        env = k.env(job_spec(name))
        run = env.execute(flow_location=path, image="img:1", flow_run_id=run_id)
        run.wait(timeout=60, stream_logs=True)
        assert "rbac check" in run.logs()
        run.status()
        run.events()
        # The same flow run submitted again adopts its Secret and its Job.
        again = env.execute(flow_location=path, image="img:1", flow_run_id=run_id)
        assert again.name == run.name
        run.delete()
        # A Job the API refuses: the Secret made for it is deleted again.
        recording.inject_fault(422, method="POST", path="*/jobs")
        with pytest.raises(KubeApiError):
            k.env(job_spec(unique("rbac-refused"))).execute(image="img:1")
    used = used_by(recording.stop_recording())
    granted = role_rules()
    assert used - granted == set(), "requests the Role does not grant"
    assert granted - used == set(), "rules of the Role that kjenv never needed"
