"""examples/rbac.yaml is exactly what kjenv needs: every request kjenv sends in a submission's
life (create, adopt, wait with logs, status, events, delete, the token Secret's create and
adopt, the Job's clean-up when its Secret is refused) is granted by the Role, and every rule of
the Role is used. With
``KJENV_TEST_KUBECONFIG`` (the real tier) the Role also runs a submission through a real API
server's RBAC authorizer, as a ServiceAccount's token.

The local cluster records the requests it serves; each is mapped to its RBAC attributes (verb,
API group, resource/subresource) the way kube-apiserver's request-info resolver does.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import yaml
from kube_cluster import (
    REAL_KUBECONFIG,
    PrintFlow,
    auth_token,
    flow_file,
    job_spec,
    local_kube,
    unique,
    wait_until,
)

from kjenv import KubeApiError, KubernetesJobEnvironment

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
        # A Secret the API refuses: the Job made for it is deleted again (the Secret is only
        # ever created already owned by its Job, so it needs no patch and no delete).
        recording.inject_fault(422, method="POST", path="*/secrets")
        with pytest.raises(KubeApiError):
            k.env(job_spec(unique("rbac-refused"))).execute(image="img:1")
    used = used_by(recording.stop_recording())
    granted = role_rules()
    assert used - granted == set(), "requests the Role does not grant"
    assert granted - used == set(), "rules of the Role that kjenv never needed"


# ---- the same Role on a real API server's RBAC authorizer (the real tier) ------------------------

if REAL_KUBECONFIG:

    def _submitter_kubeconfig(admin_kubeconfig: str, token: str, path: Path) -> str:
        """A kubeconfig for the ServiceAccount's token on the admin kubeconfig's cluster."""
        admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
        context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
        cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "submitter", "user": {"token": token}}],
            "contexts": [
                {"name": "submitter", "context": {"cluster": cluster["name"], "user": "submitter"}}
            ],
            "current-context": "submitter",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return str(path)

    @pytest.fixture
    def submitter(tmp_path):
        """A fresh namespace with examples/rbac.yaml applied, and a kubeconfig for its
        ServiceAccount (a TokenRequest); the namespace is deleted afterwards."""
        from kubernetes import client, config, utils

        api = config.new_client_from_config(config_file=REAL_KUBECONFIG)
        core = client.CoreV1Api(api)
        ns = unique("rbac")
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        try:
            utils.create_from_yaml(api, str(ROLE_FILE), namespace=ns)
            wait_until(
                lambda: core.read_namespaced_service_account("kjenv-submitter", ns),
                timeout=30,
                what="the ServiceAccount",
            )
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            )
            token = core.create_namespaced_service_account_token(
                "kjenv-submitter", ns, request
            ).status.token
            yield ns, _submitter_kubeconfig(REAL_KUBECONFIG, token, tmp_path / "submitter")
        finally:
            core.delete_namespace(ns)

    def test_the_role_is_enough_on_a_real_rbac_authorizer(submitter, monkeypatch, tmp_path):
        from kubernetes import client, config

        ns, kubeconfig = submitter
        path = flow_file(tmp_path, PrintFlow(["rbac on a real cluster"]))
        with auth_token(monkeypatch, "rbac-token-not-for-anyone"):
            env = KubernetesJobEnvironment(
                job_spec=job_spec(unique("rbac")), kubeconfig=kubeconfig, namespace=ns
            )
            run = env.execute(flow_location=path, image="img:1")
            run.wait(timeout=120, stream_logs=True)
            assert "rbac on a real cluster" in run.logs()
            assert run.status()["phase"] == "Succeeded"
            run.events()
            # Without the pods/log rule the API server refuses the log read: the Role is what
            # grants it, not some wider default.
            rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(REAL_KUBECONFIG))
            role = rbac.read_namespaced_role("kjenv-submitter", ns)
            role.rules = [r for r in role.rules if r.resources != ["pods/log"]]
            rbac.replace_namespaced_role("kjenv-submitter", ns, role)

            def refused():
                try:
                    run.logs()
                except KubeApiError as e:
                    return e.status == 403
                return False

            wait_until(refused, timeout=30, what="the log read to be refused")
            run.delete()
