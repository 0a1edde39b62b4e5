"""``kjenv check``: a SelfSubjectAccessReview for each request kjenv makes, and a server-side
dry run of the rendered Job; one table, exit 0 when everything is allowed, 1 otherwise.

The real tier (``KJENV_TEST_KUBECONFIG``) runs it as ServiceAccounts bound to less than
examples/rbac.yaml's Role and to the whole Role: it must name exactly what is missing. The local
cluster does the same with users added with those rules (``LocalCluster.add_user``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from kube_cluster import REAL_KUBECONFIG, job_spec, kjenv_cli, unique, wait_until

from kjenv import KubernetesJobEnvironment
from kjenv.cli import check_table

ROLE_FILE = Path(__file__).parent.parent / "examples" / "rbac.yaml"


def write_spec(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job_spec(name)))
    return str(path)


def test_check_bad_input_is_one_line_exit_2(tmp_path):
    out = kjenv_cli("check", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("kjenv: error: "), out.stderr
    out = kjenv_cli("check", "--kubeconfig", str(tmp_path / "no-such-kubeconfig"))
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr


def test_the_table_marks_missing_unused_and_a_refused_dry_run():
    perm = {"group": "batch", "resource": "jobs", "used_for": "x", "detail": ""}
    report = {
        "namespace": "ns",
        "permissions": [
            {**perm, "verb": "create", "allowed": True, "needed": True},
            {**perm, "verb": "delete", "allowed": False, "needed": True},
            {
                **perm,
                "group": "",
                "resource": "pods/log",
                "verb": "get",
                "allowed": False,
                "needed": True,
            },
            {
                **perm,
                "group": "",
                "resource": "secrets",
                "verb": "get",
                "allowed": False,
                "needed": False,
            },
        ],
        "dry_run": {"job": "j", "allowed": False, "detail": "exceeded quota\n(Forbidden)"},
        "ok": False,
    }
    lines = check_table(report)
    assert lines[0].split() == ["RESULT", "VERB", "RESOURCE", "USED", "FOR"]
    assert lines[1].split()[:3] == ["allowed", "create", "jobs.batch"]
    assert lines[2].split()[:3] == ["MISSING", "delete", "jobs.batch"]
    assert lines[3].split()[:3] == ["MISSING", "get", "pods/log"]
    assert lines[4].split()[:3] == ["unused", "get", "secrets"]
    assert "not needed: no Prefect Cloud token" in lines[4]
    assert lines[5].split()[:3] == ["REFUSED", "create", "jobs.batch"]
    assert lines[5].endswith("dry run (dryRun=All) of job j: exceeded quota (Forbidden)")
    assert lines[6] == (
        "kjenv check: namespace ns: 3 missing: delete jobs.batch, get pods/log, "
        "the dry run of job j"
    )


def role_rules() -> set[tuple[str, str, str]]:
    """The (API group, resource, verb) triples examples/rbac.yaml's Role grants."""
    (role,) = [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d and d["kind"] == "Role"]
    return {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def kubeconfig_for(token: str, path: Path) -> str:
    """A kubeconfig for a ServiceAccount's token on the admin kubeconfig's cluster."""
    admin = yaml.safe_load(Path(REAL_KUBECONFIG).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


# What the restricted Role leaves out of examples/rbac.yaml's.
WITHHELD = {
    ("batch", "jobs", "delete"),
    ("", "pods", "watch"),
    ("", "pods/log", "get"),
    ("", "secrets", "create"),
    ("", "secrets", "get"),
}


def restricted(rules: list[dict]) -> list[dict]:
    """The Role's rules without the :data:`WITHHELD` verbs."""
    out = []
    for rule in rules:
        (group,), (resource,) = rule["apiGroups"], rule["resources"]
        verbs = [v for v in rule["verbs"] if (group, resource, v) not in WITHHELD]
        if verbs:
            out.append({**rule, "verbs": verbs})
    return out


def table_rows(stdout: str) -> dict[tuple[str, str], str]:
    """``{(verb, resource): result}`` of the printed table (the permission rows)."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        if line.startswith("kjenv check:") or "dry run" in line:
            continue
        result, verb, resource = line.split()[:3]
        rows[(verb, resource)] = result
    return rows


def shown(group: str, resource: str) -> str:
    if not group:
        return resource
    name, _, sub = resource.partition("/")
    return f"{name}.{group}" + (f"/{sub}" if sub else "")


# ---- the local cluster's users: the same checks without a real cluster ------------------------


def test_local_check_names_exactly_what_a_restricted_user_misses(local_cluster, tmp_path):
    (full,) = [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d and d["kind"] == "Role"]
    kubeconfig = local_cluster.add_user(
        unique("check-user"), restricted(full["rules"]), namespace="default"
    )
    name = unique("check")
    spec = write_spec(tmp_path, name)
    out = kjenv_cli("check", "--kubeconfig", kubeconfig, spec)
    assert out.returncode == 1, out
    rows = table_rows(out.stdout)
    want = {(v, shown(g, r)) for g, r, v in WITHHELD if r != "secrets"}
    assert {k for k, v in rows.items() if v == "MISSING"} == want, out.stdout
    assert rows[("create", "secrets")] == "unused" and rows[("get", "secrets")] == "unused"
    granted = {(v, shown(g, r)) for g, r, v in role_rules() - WITHHELD}
    assert {k for k, v in rows.items() if v == "allowed"} == granted, out.stdout
    dry = [line for line in out.stdout.splitlines() if "dry run" in line]
    assert len(dry) == 1 and dry[0].startswith("allowed"), out.stdout
    last = out.stdout.splitlines()[-1]
    assert last.startswith("kjenv check: namespace default: 3 missing: "), last
    # The dry run stored nothing.
    from kubernetes import client, config

    batch = client.BatchV1Api(config.new_client_from_config(config_file=local_cluster.kubeconfig))
    assert name not in [j.metadata.name for j in batch.list_namespaced_job("default").items]
    # The Python API says the same, without a table.
    report = KubernetesJobEnvironment(kubeconfig=kubeconfig).check(dry_run=False)
    assert not report["ok"] and report["namespace"] == "default"
    refused = {
        (p["group"], p["resource"], p["verb"]) for p in report["permissions"] if not p["allowed"]
    }
    assert refused == WITHHELD


def test_local_check_with_the_whole_role_allows_everything(local_cluster, tmp_path):
    (full,) = [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d and d["kind"] == "Role"]
    kubeconfig = local_cluster.add_user(unique("check-user"), full["rules"], namespace="default")
    env = {**os.environ, "PREFECT__CLOUD__AUTH_TOKEN": "check-token-not-for-anyone"}
    out = kjenv_cli(
        "check", "--kubeconfig", kubeconfig, write_spec(tmp_path, unique("check")), env=env
    )
    assert out.returncode == 0, out
    assert out.stdout.splitlines()[-1] == (
        "kjenv check: namespace default: everything kjenv needs is allowed"
    )
    assert set(table_rows(out.stdout).values()) == {"allowed"}


# ---- a real API server's RBAC authorizer (the real tier) ---------------------------------------

if REAL_KUBECONFIG:

    @pytest.fixture
    def service_account(tmp_path):
        """``make(rules)``: a fresh namespace, examples/rbac.yaml applied with the Role's rules
        replaced by ``rules`` (when given), and a kubeconfig for its ServiceAccount's token (a
        TokenRequest). Namespaces are deleted afterwards."""
        from kubernetes import client, config, utils

        api = config.new_client_from_config(config_file=REAL_KUBECONFIG)
        core = client.CoreV1Api(api)
        made: list[str] = []

        def make(rules=None) -> tuple[str, str]:
            ns = unique("check")
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            made.append(ns)
            docs = [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d]
            for doc in docs:
                if doc["kind"] == "Role" and rules is not None:
                    doc["rules"] = rules
                utils.create_from_dict(api, doc, namespace=ns)
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
            return ns, kubeconfig_for(token, tmp_path / f"{ns}.kubeconfig")

        yield make
        for ns in made:
            core.delete_namespace(ns)

    def test_real_check_names_exactly_what_a_restricted_account_misses(service_account, tmp_path):
        from kubernetes import client, config

        rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(REAL_KUBECONFIG))
        role = yaml.safe_load_all(ROLE_FILE.read_text())
        (full,) = [d for d in role if d and d["kind"] == "Role"]
        ns, kubeconfig = service_account(restricted(full["rules"]))
        # RBAC changes reach the authorizer through its informer: wait until the Role is seen.
        wait_until(
            lambda: rbac.read_namespaced_role("kjenv-submitter", ns), timeout=30, what="the Role"
        )
        spec = write_spec(tmp_path, unique("check"))

        def run_check(*args: str, token: bool = False):
            env = {**os.environ}
            if token:
                env["PREFECT__CLOUD__AUTH_TOKEN"] = "check-token-not-for-anyone"
            return kjenv_cli("check", "--kubeconfig", kubeconfig, "-n", ns, *args, env=env)

        def missing_after(out) -> set[tuple[str, str]]:
            return {k for k, v in table_rows(out.stdout).items() if v == "MISSING"}

        # Without a Prefect Cloud token the Secret's permissions are unused, not missing.
        want = {(v, shown(g, r)) for g, r, v in WITHHELD if r != "secrets"}
        out = wait_until(
            lambda: (o := run_check(spec)) and missing_after(o) == want and o,
            timeout=30,
            what="the restricted Role to be in force",
        )
        assert out.returncode == 1, out
        rows = table_rows(out.stdout)
        assert rows[("create", "secrets")] == "unused" and rows[("get", "secrets")] == "unused"
        allowed = {k for k, v in rows.items() if v == "allowed"}
        granted = {(v, shown(g, r)) for g, r, v in role_rules() - WITHHELD}
        assert allowed == granted
        dry = [line for line in out.stdout.splitlines() if "dry run" in line]
        assert len(dry) == 1 and dry[0].startswith("allowed"), out.stdout
        last = out.stdout.splitlines()[-1]
        assert last.startswith(f"kjenv check: namespace {ns}: 3 missing: "), last
        assert all(f"{verb} {resource}" in last for verb, resource in want), last
        # With a Cloud token, the Secret's too.
        out = run_check(token=True)
        assert out.returncode == 1, out
        assert missing_after(out) == {(v, shown(g, r)) for g, r, v in WITHHELD}
        assert not any("dry run" in line for line in out.stdout.splitlines())
        # The Python API says the same, without a table.
        report = KubernetesJobEnvironment(kubeconfig=kubeconfig, namespace=ns).check(dry_run=False)
        assert not report["ok"] and report["namespace"] == ns
        refused = {
            (p["group"], p["resource"], p["verb"])
            for p in report["permissions"]
            if not p["allowed"]
        }
        assert refused == WITHHELD

    def test_real_check_with_the_whole_role_allows_everything(service_account, tmp_path):
        ns, kubeconfig = service_account()
        spec = write_spec(tmp_path, unique("check"))
        env = {**os.environ, "PREFECT__CLOUD__AUTH_TOKEN": "check-token-not-for-anyone"}
        out = wait_until(
            lambda: (
                (o := kjenv_cli("check", "--kubeconfig", kubeconfig, "-n", ns, spec, env=env))
                and o.returncode == 0
                and o
            ),
            timeout=30,
            what="the Role to be in force",
        )
        lines = out.stdout.splitlines()
        assert lines[-1] == f"kjenv check: namespace {ns}: everything kjenv needs is allowed"
        rows = table_rows(out.stdout)
        assert set(rows.values()) == {"allowed"}
        # The check asks for exactly the Role's rules: no more, no fewer.
        assert set(rows) == {(v, shown(g, r)) for g, r, v in role_rules()}
        assert any(line.startswith("allowed") and "dry run" in line for line in lines)
        # A dry run creates nothing.
        from kubernetes import client, config

        batch = client.BatchV1Api(config.new_client_from_config(REAL_KUBECONFIG))
        assert batch.list_namespaced_job(ns).items == []

    def test_real_check_dry_run_reports_the_servers_refusal(service_account, tmp_path):
        from kubernetes import client, config

        ns, kubeconfig = service_account()
        core = client.CoreV1Api(config.new_client_from_config(REAL_KUBECONFIG))
        quota = client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-jobs"),
            spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "0"}),
        )
        core.create_namespaced_resource_quota(ns, quota)
        spec = write_spec(tmp_path, unique("check"))
        out = wait_until(
            lambda: (
                (o := kjenv_cli("check", "--kubeconfig", kubeconfig, "-n", ns, spec))
                and "exceeded quota" in o.stdout
                and o
            ),
            timeout=30,
            what="the quota to be in force (admission first says its status is unknown)",
        )
        assert out.returncode == 1, out
        (dry,) = [line for line in out.stdout.splitlines() if line.startswith("REFUSED")]
        assert "dry run (dryRun=All) of job" in dry, out.stdout
        assert "exceeded quota: no-jobs" in dry, dry
        assert set(table_rows(out.stdout).values()) == {"allowed"}
        assert out.stdout.splitlines()[-1].endswith(
            ": 1 missing: the dry run of job " + Path(spec).stem
        )
