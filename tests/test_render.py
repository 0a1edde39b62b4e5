"""render(): the seed's transformation as seen from Python (mirrors src/transform)."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid

import pytest

from kjenv import KubernetesJobEnvironment

FLOW_ARGS = [
    'python -c "from kjenv import KubernetesJobEnvironment; KubernetesJobEnvironment().run_flow()"'
]
ENV_NAMES = [
    "PREFECT__CLOUD__GRAPHQL",
    "PREFECT__CLOUD__AUTH_TOKEN",
    "PREFECT__CONTEXT__FLOW_RUN_ID",
    "PREFECT__CONTEXT__NAMESPACE",
    "PREFECT__CONTEXT__IMAGE",
    "PREFECT__CONTEXT__FLOW_FILE_PATH",
    "PREFECT__CLOUD__USE_LOCAL_SECRETS",
    "PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS",
    "PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS",
    "PREFECT__LOGGING__LOG_TO_CLOUD",
]


def env_map(job, index=0):
    container = job["spec"]["template"]["spec"]["containers"][index]
    return {e["name"]: e for e in container["env"]}


def test_seed_spec_renders_as_the_seed_says(fixture_path):
    env = KubernetesJobEnvironment(fixture_path("seed_job_spec_resources.yaml"))
    job = env.render(image="joshmeek18/flows:1", flow_run_id="run-42")
    labels = {"identifier": env.identifier_label, "flow_run_id": "run-42"}
    assert job["metadata"]["labels"] == labels
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "joshmeek18/flows:1"
    assert container["command"] == ["/bin/sh", "-c"]
    assert container["args"] == FLOW_ARGS
    assert [e["name"] for e in container["env"]] == [
        "MY_ENV",
        *ENV_NAMES,
        "PREFECT__LOGGING__EXTRA_LOGGERS",
    ]
    assert container["resources"] == {
        "limits": {"cpu": "2", "memory": "4G"},
        "requests": {"cpu": "1", "memory": "2G"},
    }
    env_vars = env_map(job)
    assert env_vars["PREFECT__CONTEXT__FLOW_RUN_ID"]["value"] == "run-42"
    assert env_vars["PREFECT__CONTEXT__IMAGE"]["value"] == "joshmeek18/flows:1"
    assert env_vars["PREFECT__CONTEXT__NAMESPACE"]["value"] == "default"
    assert env_vars["PREFECT__CLOUD__USE_LOCAL_SECRETS"]["value"] == "true"
    assert job["metadata"]["namespace"] == "default"


def test_sidecar_and_init_containers_untouched(fixture_path):
    env = KubernetesJobEnvironment(fixture_path("sidecar_init.yaml"))
    spec = env.job_spec
    job = env.render(image="i:1")
    pod, orig = job["spec"]["template"]["spec"], spec["spec"]["template"]["spec"]
    assert pod["containers"][1] == orig["containers"][1]
    assert pod["initContainers"] == orig["initContainers"]
    assert pod["volumes"] == orig["volumes"] and pod["tolerations"] == orig["tolerations"]
    assert pod["containers"][0]["x-unknown-field"] == "keep"
    assert job["metadata"]["namespace"] == "flows", "the spec's namespace is used"


def test_value_resolution_order(fixture_path, monkeypatch):
    env = KubernetesJobEnvironment(fixture_path("minimal.yaml"), metadata={"image": "meta/img:2"})
    assert env.render()["spec"]["template"]["spec"]["containers"][0]["image"] == "meta/img:2"
    assert env.render(image="arg/img:3")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "arg/img:3"
    )
    monkeypatch.setenv("PREFECT__CONTEXT__IMAGE", "env/img:4")
    monkeypatch.setenv("PREFECT__CONTEXT__FLOW_RUN_ID", "env-run")
    monkeypatch.setenv("PREFECT__CONTEXT__FLOW_FILE_PATH", "/env/flow")
    bare = KubernetesJobEnvironment()
    job = bare.render()
    vars_ = env_map(job)
    assert vars_["PREFECT__CONTEXT__IMAGE"]["value"] == "env/img:4"
    assert vars_["PREFECT__CONTEXT__FLOW_RUN_ID"]["value"] == "env-run"
    assert vars_["PREFECT__CONTEXT__FLOW_FILE_PATH"]["value"] == "/env/flow"
    assert KubernetesJobEnvironment(namespace="ctor-ns").render()["metadata"]["namespace"] == (
        "ctor-ns"
    )
    assert bare.render(namespace="arg-ns")["metadata"]["namespace"] == "arg-ns"


def test_missing_image_is_a_clear_value_error():
    with pytest.raises(ValueError, match="no image for the flow container"):
        KubernetesJobEnvironment().render()


def test_new_flow_run_id_and_default_flow_path():
    job = KubernetesJobEnvironment().render(image="i")
    vars_ = env_map(job)
    assert uuid.UUID(vars_["PREFECT__CONTEXT__FLOW_RUN_ID"]["value"])
    assert vars_["PREFECT__CONTEXT__FLOW_FILE_PATH"]["value"] == "/root/.prefect/flow_env.prefect"


def test_default_name_and_unique_job_name(fixture_path):
    name = KubernetesJobEnvironment().render(image="i")["metadata"]["name"]
    assert name.startswith("prefect-job-") and len(name) == len("prefect-job-") + 8
    env = KubernetesJobEnvironment(fixture_path("seed_job_spec.yaml"), unique_job_name=True)
    first, second = (env.render(image="i")["metadata"]["name"] for _ in range(2))
    assert first != second
    assert first.startswith("my-prefect-job-") and len(first) == len("my-prefect-job-") + 8


def test_replaced_fields_warn_once(fixture_path, caplog):
    env = KubernetesJobEnvironment(fixture_path("sidecar_init.yaml"))
    with caplog.at_level(logging.WARNING, logger="kjenv"):
        env.render(image="i")
        env.render(image="i")
    records = [r for r in caplog.records if r.name == "kjenv"]
    assert len(records) == 1
    msg = records[0].getMessage()
    for field in ("image", "command", "args", "env[PREFECT__CLOUD__AUTH_TOKEN]"):
        assert f"containers[flow].{field}" in msg
    assert "user-set-token" not in msg


def test_seed_spec_does_not_warn(fixture_path, caplog):
    with caplog.at_level(logging.WARNING, logger="kjenv"):
        KubernetesJobEnvironment(fixture_path("seed_job_spec.yaml")).render(image="i")
    assert not [r for r in caplog.records if r.name == "kjenv"]


def test_cloud_token_from_environment_goes_to_a_secret_ref(fixture_path):
    # A fresh interpreter without Prefect loaded reads the Cloud settings from the environment.
    code = (
        "import json, sys; from kjenv import KubernetesJobEnvironment as K;"
        f"e = K({fixture_path('seed_job_spec.yaml')!r});"
        "j = e.render(image='i'); print(json.dumps(j)); print(repr(e)); print(e.serialize());"
        "assert 'prefect' not in sys.modules"
    )
    env = {
        "PREFECT__CLOUD__AUTH_TOKEN": "tok-very-secret",
        "PREFECT__CLOUD__GRAPHQL": "https://api.example/graphql",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "tok-very-secret" not in out
    import json

    job = json.loads(out.splitlines()[0])
    vars_ = env_map(job)
    assert vars_["PREFECT__CLOUD__AUTH_TOKEN"] == {
        "name": "PREFECT__CLOUD__AUTH_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "my-prefect-job-kjenv", "key": "auth-token"}},
    }
    assert vars_["PREFECT__CLOUD__GRAPHQL"]["value"] == "https://api.example/graphql"
    assert vars_["PREFECT__LOGGING__LOG_TO_CLOUD"]["value"] == "true"
    assert vars_["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"]["value"] == (
        "prefect.engine.cloud.CloudFlowRunner"
    )


def test_prefect_flow_storage_and_context(tmp_path, monkeypatch):
    prefect = pytest.importorskip("prefect")
    from prefect.storage import Docker, Local

    with prefect.Flow("stored") as flow:
        pass
    local = Local(directory=str(tmp_path))
    flow.storage = local
    path = local.add_flow(flow)
    env = KubernetesJobEnvironment(metadata={"image": "m/i:1"})
    with prefect.context(flow_run_id="ctx-run", namespace="ctx-ns"):
        job = env.render(flow)
    vars_ = env_map(job)
    assert vars_["PREFECT__CONTEXT__FLOW_FILE_PATH"]["value"] == path
    assert vars_["PREFECT__CONTEXT__FLOW_RUN_ID"]["value"] == "ctx-run"
    assert job["metadata"]["labels"]["flow_run_id"] == "ctx-run"
    assert job["metadata"]["namespace"] == "ctx-ns"
    docker = Docker(registry_url="reg.example", image_name="flows", image_tag="v7")
    flow.storage = docker
    job = KubernetesJobEnvironment().render(flow)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.example/flows:v7"


def test_prefect_config_token(fixture_path):
    pytest.importorskip("prefect")
    from prefect.utilities.configuration import set_temporary_config

    with set_temporary_config({"cloud.auth_token": "cfg-token-xyz"}):
        job = KubernetesJobEnvironment(fixture_path("seed_job_spec.yaml")).render(image="i")
    assert "cfg-token-xyz" not in str(job)
    assert env_map(job)["PREFECT__CLOUD__AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == (
        "my-prefect-job-kjenv"
    )


def test_kubeconfig_namespace_is_used_like_execute(tmp_path, fixture_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n"
        "users:\n- name: u\n  user:\n    token: t\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n    namespace: team-a\n"
    )
    env = KubernetesJobEnvironment(kubeconfig=str(kubeconfig))
    assert env.render(image="i")["metadata"]["namespace"] == "team-a"
    assert env.render(image="i", namespace="arg")["metadata"]["namespace"] == "arg"
    spec_ns = KubernetesJobEnvironment(
        fixture_path("sidecar_init.yaml"), kubeconfig=str(kubeconfig)
    )
    assert spec_ns.render(image="i")["metadata"]["namespace"] == "flows"
