"""The local cluster's users and access reviews, checked with clients nobody here wrote: a user
added with RBAC rules in a namespace (``LocalCluster.add_user``) gets its own kubeconfig;
kubectl's ``auth can-i`` (SelfSubjectAccessReview) and ``auth can-i --list``
(SelfSubjectRulesReview), 1.20 and the newer one (protobuf bodies), and the official Python
client's reviews answer from those rules; a request beyond them gets kube-apiserver's 403 in its
words; the admin's token may do anything."""

from __future__ import annotations

import pytest
import yaml
from kube_cluster import unique
from test_conformance_kubectl import Kubectl, kubectl_binary
from test_conformance_kubectl_new import new_kubectl_binary

RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


@pytest.fixture(scope="module", params=["1.20", "new"])
def restricted(request, local_cluster, tmp_path_factory):
    """kubectl (1.20, and the newer one, which sends the reviews as protobuf) with the
    kubeconfig of a user the local cluster allows only RULES."""
    name = unique("restricted")
    kubeconfig = local_cluster.add_user(name, RULES, namespace="default")
    home = tmp_path_factory.mktemp("kubectl-restricted")
    binary = kubectl_binary() if request.param == "1.20" else new_kubectl_binary()
    return name, kubeconfig, Kubectl(binary, kubeconfig, home)


def test_kubectl_auth_can_i_answers_from_the_user_s_rules(restricted):
    _, _, kubectl = restricted
    for args, answer in [
        (["create", "jobs"], "yes"),
        (["get", "pods", "--subresource=log"], "yes"),
        (["list", "pods"], "yes"),
        (["delete", "jobs"], "no"),
        (["get", "pods"], "no"),
        (["create", "secrets"], "no"),
        (["list", "jobs", "--all-namespaces"], "no"),
    ]:
        proc = kubectl.run("auth", "can-i", *args, check=False)
        assert proc.stdout.strip() == answer, (args, proc.stdout, proc.stderr)
        assert proc.returncode == (0 if answer == "yes" else 1), (args, proc.returncode)


def test_kubectl_auth_whoami_names_the_user(local_cluster, tmp_path):
    """``kubectl auth whoami`` (SelfSubjectReview; kubectl 1.26 added it, so the newer one)."""
    name = unique("whoami")
    kubeconfig = local_cluster.add_user(name, RULES, namespace="default")
    kubectl = Kubectl(new_kubectl_binary(), kubeconfig, tmp_path)
    out = kubectl.run("auth", "whoami").stdout.split()
    assert out[out.index("Username") + 1] == name, out
    assert out[out.index("Groups") + 1] == "[system:authenticated]", out


def test_kubectl_auth_can_i_list_shows_the_rules(restricted):
    _, _, kubectl = restricted
    table = kubectl.run("auth", "can-i", "--list").stdout
    rows = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
    assert "[create get list watch]" in rows["jobs.batch"], table
    assert "[get]" in rows["pods/log"], table
    assert "secrets" not in rows, table


def test_a_request_beyond_the_rules_gets_kube_apiserver_s_403(restricted):
    name, _, kubectl = restricted
    proc = kubectl.run("get", "secrets", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'Error from server (Forbidden): secrets is forbidden: User "{name}" cannot list '
        'resource "secrets" in API group "" in the namespace "default"'
    )
    proc = kubectl.run("delete", "job", "nothing-here", check=False)
    assert proc.stderr.strip() == (
        f'Error from server (Forbidden): jobs.batch "nothing-here" is forbidden: User "{name}" '
        'cannot delete resource "jobs" in API group "batch" in the namespace "default"'
    )
    proc = kubectl.run("get", "namespaces", check=False)
    scope = 'cannot list resource "namespaces" in API group "" at the cluster scope'
    assert f'User "{name}" {scope}' in proc.stderr, proc.stderr
    # What the rules allow works: discovery, and listing jobs.
    assert kubectl.json("get", "jobs")["kind"] == "List"


def test_the_official_client_s_reviews_and_errors(local_cluster, restricted):
    from kubernetes import client, config

    name, kubeconfig, _ = restricted
    api = config.new_client_from_config(config_file=kubeconfig)
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace="default", verb="create", group="batch", resource="jobs"
            )
        )
    )
    answer = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    assert answer.status.allowed is True
    review.spec.resource_attributes.verb = "delete"
    answer = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    assert answer.status.allowed is False
    who = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    assert who.status.user_info.username == name
    assert who.status.user_info.groups == ["system:authenticated"]
    with pytest.raises(client.ApiException) as refused:
        client.CoreV1Api(api).read_namespaced_secret("any", "default")
    assert refused.value.status == 403
    body = refused.value.body
    assert f'secrets \\"any\\" is forbidden: User \\"{name}\\" cannot get resource' in body, body
    # The admin (the cluster's own kubeconfig) may do anything.
    admin = config.new_client_from_config(config_file=local_cluster.kubeconfig)
    review.spec.resource_attributes.verb = "deletecollection"
    answer = client.AuthorizationV1Api(admin).create_self_subject_access_review(review)
    assert answer.status.allowed is True


def test_the_emulator_s_admin_endpoints_are_the_admin_s_only(restricted, local_cluster):
    import json
    import ssl
    import urllib.error
    import urllib.request

    _, kubeconfig, _ = restricted
    with open(kubeconfig) as f:
        user = yaml.safe_load(f)["users"][0]["user"]
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE  # only the status code matters here; the token is a test's
    request = urllib.request.Request(
        f"{local_cluster.url}/_kjenv/clear-faults",
        data=b"{}",
        headers={"Authorization": f"Bearer {user['token']}"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=tls, timeout=60)
    assert refused.value.code == 403
    status = json.loads(refused.value.read())
    assert status["message"].endswith('cannot post path "/_kjenv/clear-faults"'), status


def test_add_user_refuses_bad_input(local_cluster):
    with pytest.raises(ValueError, match='rules for user "x": unknown field `verb`'):
        local_cluster.add_user("x", [{"verb": ["get"]}])
    with pytest.raises(Exception, match='user name "Bad_Name"'):
        local_cluster.add_user("Bad_Name", [])


def test_the_example_role_is_enough_on_the_local_cluster(local_cluster, monkeypatch, tmp_path):
    """examples/rbac.yaml's Role as a user's rules: a whole Cloud-mode run works with them;
    without its pods/log rule the log read gets kube-apiserver's 403 (the Role is what grants
    it)."""
    from kube_cluster import PrintFlow, auth_token, flow_file, job_spec
    from test_rbac import ROLE_FILE

    import kjenv

    docs = [d for d in yaml.safe_load_all(ROLE_FILE.read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    name = unique("submitter")
    kubeconfig = local_cluster.add_user(name, role["rules"], namespace="default")
    path = flow_file(tmp_path, PrintFlow(["as the Role's user"]))
    with auth_token(monkeypatch, "rbac-token-not-for-anyone"):
        env = kjenv.KubernetesJobEnvironment(
            job_spec=job_spec(unique("role-user")), kubeconfig=kubeconfig
        )
        run = env.execute(flow_location=path, image="img:1")
        run.wait(timeout=120, stream_logs=True)
        assert "as the Role's user" in run.logs()
        assert run.status()["phase"] == "Succeeded"
        run.events()
        narrower = [r for r in role["rules"] if r["resources"] != ["pods/log"]]
        local_cluster.add_user(name, narrower, namespace="default")
        with pytest.raises(kjenv.KubeApiError) as refused:
            run.logs()
        assert refused.value.status == 403
        assert f'User "{name}" cannot get resource "pods/log"' in str(refused.value)
        run.delete()
