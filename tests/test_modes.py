"""Where a flow run reports (Cloud, Server, backend-less), decided from Prefect's configuration:
``prefect.config`` when the program loaded Prefect, else the ``PREFECT__…`` variables
(mirrors ``CloudSettings::mode`` in src/context.rs and its table test)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kjenv import KubernetesJobEnvironment

CLOUD_RUNNER = "prefect.engine.cloud.CloudFlowRunner"
LOCAL_RUNNER = "prefect.engine.flow_runner.FlowRunner"


def env_map(job):
    return {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def render_fresh(fixture_path, env: dict, import_prefect: bool = False) -> dict:
    """Render the seed spec in a fresh interpreter with exactly ``env``."""
    code = (
        ("import prefect;" if import_prefect else "")
        + "import json, sys; from kjenv import KubernetesJobEnvironment as K;"
        + f"print(json.dumps(K({fixture_path('seed_job_spec.yaml')!r}).render(image='i')));"
        + ("" if import_prefect else "assert 'prefect' not in sys.modules")
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return json.loads(out.splitlines()[-1])


def assert_server(job, graphql: str, api: str):
    env = env_map(job)
    value = {name: e.get("value") for name, e in env.items()}
    assert value["PREFECT__CLOUD__GRAPHQL"] == graphql
    assert value["PREFECT__CLOUD__API"] == api
    assert value["PREFECT__BACKEND"] == "server"
    assert value["PREFECT__CLOUD__AUTH_TOKEN"] == ""
    assert "valueFrom" not in env["PREFECT__CLOUD__AUTH_TOKEN"]
    assert value["PREFECT__CLOUD__USE_LOCAL_SECRETS"] == "false"
    assert value["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"] == CLOUD_RUNNER
    assert value["PREFECT__LOGGING__LOG_TO_CLOUD"] == "true"
    assert value["PREFECT__CLOUD__SEND_FLOW_RUN_LOGS"] == "true"


def test_server_backend_from_the_environment_without_prefect(fixture_path):
    job = render_fresh(
        fixture_path,
        {"PREFECT__BACKEND": "server", "PREFECT__SERVER__ENDPOINT": "http://prefect.internal:4200"},
    )
    assert_server(job, "http://prefect.internal:4200/graphql", "http://prefect.internal:4200")


def test_server_backend_from_prefects_config_derives_the_endpoint(fixture_path):
    pytest.importorskip("prefect")
    job = render_fresh(
        fixture_path,
        {
            "PREFECT__BACKEND": "server",
            "PREFECT__SERVER__HOST": "http://prefect.internal",
            "PREFECT__LOGGING__EXTRA_LOGGERS": "['dask', 'boto3']",
        },
        import_prefect=True,
    )
    assert_server(job, "http://prefect.internal:4200/graphql", "http://prefect.internal:4200")
    assert env_map(job)["PREFECT__LOGGING__EXTRA_LOGGERS"]["value"] == "['dask', 'boto3']"


def test_a_stray_token_does_not_travel_to_a_server(fixture_path):
    job = render_fresh(
        fixture_path, {"PREFECT__BACKEND": "server", "PREFECT__CLOUD__AUTH_TOKEN": "tok-SECRET"}
    )
    assert "tok-SECRET" not in json.dumps(job)
    assert_server(job, "http://localhost:4200/graphql", "http://localhost:4200")


def test_backend_less_on_request_even_with_a_server(fixture_path):
    job = render_fresh(fixture_path, {"PREFECT__BACKEND": "server", "KJENV_BACKEND": "none"})
    env = env_map(job)
    assert env["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"]["value"] == LOCAL_RUNNER
    assert env["PREFECT__CLOUD__USE_LOCAL_SECRETS"]["value"] == "true"
    assert env["PREFECT__CLOUD__GRAPHQL"]["value"] == ""
    assert "PREFECT__BACKEND" not in env


def test_no_backend_in_play_is_backend_less(fixture_path):
    env = env_map(render_fresh(fixture_path, {}))
    assert env["PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS"]["value"] == LOCAL_RUNNER
    assert env["PREFECT__LOGGING__EXTRA_LOGGERS"]["value"] == "[]"
    assert "PREFECT__CLOUD__SEND_FLOW_RUN_LOGS" not in env


def test_server_mode_in_process_follows_prefect_config(fixture_path):
    pytest.importorskip("prefect")
    from prefect.utilities.configuration import set_temporary_config

    settings = {
        "backend": "server",
        "cloud.api": "http://127.0.0.1:4200",
        "cloud.graphql": "http://127.0.0.1:4200/graphql",
    }
    with set_temporary_config(settings):
        job = KubernetesJobEnvironment(fixture_path("seed_job_spec.yaml")).render(image="i")
    assert_server(job, "http://127.0.0.1:4200/graphql", "http://127.0.0.1:4200")
