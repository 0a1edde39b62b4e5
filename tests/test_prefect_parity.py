"""Differential test against Prefect 0.15.13 itself: for the same spec and context, kjenv's
``render()`` and Prefect's ``KubernetesJobEnvironment._populate_run_time_job_spec_details``
agree on every field except the differences that the README's migration notes list.

``ALLOWED`` is that list as data: each entry names its README note (the bold lead of a bullet
under "Migrating from ..."), the modes it applies to and the paths it covers. A difference that
no entry covers fails the test, an entry that no case uses fails it too (the list stays tight),
and an entry whose note is missing from the README fails it (the two stay in step).

Environment variables are compared as the container sees them: by name, the last entry of a
name winning (Kubernetes' rule), so Prefect's duplicate entries compare by their effective value.
"""

from __future__ import annotations

import copy
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from kjenv import KubernetesJobEnvironment

prefect = pytest.importorskip("prefect")
from prefect.environments.execution.k8s.job import (  # noqa: E402
    KubernetesJobEnvironment as PrefectKubernetesJobEnvironment,
)
from prefect.utilities.configuration import set_temporary_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`Environment` based flow configuration")
README = Path(__file__).resolve().parents[1] / "README.md"
C0 = "spec/template/spec/containers/0"
SIDECARS = "spec/template/spec/containers/[1-9]*"
LABEL_PATHS = [
    f"{where}labels/{key}"
    for where in ("metadata/", "spec/template/metadata/")
    for key in ("identifier", "flow_run_id", "prefect.io/identifier", "prefect.io/flow_run_id")
]
ALL = {"cloud", "server", "backend-less"}
BACKEND_LESS_VALUES = [
    f"{C0}/env/PREFECT__CLOUD__GRAPHQL",
    f"{C0}/env/PREFECT__CLOUD__USE_LOCAL_SECRETS",
    f"{C0}/env/PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS",
    f"{C0}/env/PREFECT__ENGINE__TASK_RUNNER__DEFAULT_CLASS",
    f"{C0}/env/PREFECT__CLOUD__SEND_FLOW_RUN_LOGS",
]

# Mirrors the README's migration notes; `note` is the bullet's bold lead.
ALLOWED = [
    {"note": "labels", "modes": ALL, "paths": LABEL_PATHS},
    {"note": "env vars only on the first container", "modes": ALL, "paths": [f"{SIDECARS}/env*"]},
    {
        "note": "the token is never in the Job",
        "modes": {"cloud"},
        "paths": [f"{C0}/env/PREFECT__CLOUD__AUTH_TOKEN"],
    },
    {
        "note": "a Server takes no token",
        "modes": {"server"},
        "paths": [f"{C0}/env/PREFECT__CLOUD__AUTH_TOKEN"],
    },
    {
        "note": "the in-container command imports kjenv",
        "modes": ALL,
        "paths": [f"{C0}/args"],
    },
    {
        "note": "the documentation's ten variables",
        "modes": ALL,
        "paths": [
            f"{C0}/env/PREFECT__CONTEXT__FLOW_FILE_PATH",
            f"{C0}/env/PREFECT__LOGGING__LOG_TO_CLOUD",
        ],
    },
    {
        "note": "Server's address in the pod",
        "modes": {"server"},
        "paths": [f"{C0}/env/PREFECT__BACKEND", f"{C0}/env/PREFECT__CLOUD__API"],
    },
    {"note": "backend-less runs", "modes": {"backend-less"}, "paths": BACKEND_LESS_VALUES},
    {
        "note": "the namespace is written into the Job",
        "modes": ALL,
        "paths": ["metadata/namespace"],
    },
    {
        "note": "a flow that cannot be loaded fails the Job at once",
        "modes": ALL,
        "paths": ["spec/podFailurePolicy"],
    },
    {
        "note": "defaults the API server needs",
        "modes": ALL,
        "paths": ["spec/template/spec/restartPolicy", "metadata/name", f"{C0}/name"],
    },
]

GRAPHQL = "http://127.0.0.1:4200/graphql"
MODES = {
    "cloud": {
        "backend": "cloud",
        "cloud.graphql": "https://api.prefect.io/graphql",
        "cloud.auth_token": "tok-parity-SECRET",
        "logging.extra_loggers": ["dask", "boto3"],
    },
    "server": {
        "backend": "server",
        "cloud.api": "http://127.0.0.1:4200",
        "cloud.graphql": GRAPHQL,
        # A token left over from Cloud: Prefect writes it into the pod, kjenv does not.
        "cloud.auth_token": "tok-stray-SECRET",
        "logging.extra_loggers": ["dask"],
    },
    "backend-less": {
        "backend": "cloud",
        "cloud.graphql": "https://api.prefect.io/graphql",
        "cloud.auth_token": "",
        "logging.extra_loggers": [],
    },
}
SPECS = ["seed_job_spec.yaml", "seed_job_spec_resources.yaml", "sidecar_init.yaml", "minimal.yaml"]


def _env_as_seen(container: dict) -> dict:
    env = container.get("env")
    if not isinstance(env, list):
        return env
    return {entry["name"]: {k: v for k, v in entry.items() if k != "name"} for entry in env}


def _normal(job: dict) -> dict:
    job = copy.deepcopy(job)
    for container in job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        if "env" in container:
            container["env"] = _env_as_seen(container)
    return job


def _differences(a, b, path=""):
    """Paths (``/``-joined) where ``a`` and ``b`` differ, as deep as both are containers; an
    allowed path covers everything below it."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            out += _differences(a.get(key), b.get(key), f"{path}/{key}" if path else str(key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}/{i}")]
    return [] if a == b else [path]


def _allowed_by(path: str, mode: str) -> list[str]:
    return [
        entry["note"]
        for entry in ALLOWED
        if mode in entry["modes"]
        and any(fnmatchcase(path, p) or fnmatchcase(path, f"{p}/*") for p in entry["paths"])
    ]


def _both_renders(fixture_path, spec: str, mode: str) -> tuple[dict, dict]:
    path = fixture_path(spec)
    with set_temporary_config(MODES[mode]):
        with prefect.context(flow_run_id="run-parity-1", namespace="flows"):
            ours = KubernetesJobEnvironment(path).render(image="registry.example/flows:1")
            theirs = PrefectKubernetesJobEnvironment(
                job_spec_file=path
            )._populate_run_time_job_spec_details(docker_name="registry.example/flows:1")
    return ours, theirs


USED: set[str] = set()


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("spec", SPECS)
def test_render_matches_prefect_but_for_the_migration_notes(fixture_path, spec, mode):
    ours, theirs = _both_renders(fixture_path, spec, mode)
    unexplained = []
    for path in _differences(_normal(theirs), _normal(ours)):
        notes = _allowed_by(path, mode)
        USED.update(notes)
        if not notes:
            unexplained.append(path)
    assert not unexplained, f"differences from Prefect 0.15.13 not in the notes: {unexplained}"
    # The values that decide where the run reports are Prefect's in the modes with a backend.
    env = _env_as_seen(ours["spec"]["template"]["spec"]["containers"][0])
    if mode != "backend-less":
        assert env["PREFECT__CLOUD__GRAPHQL"]["value"] == MODES[mode]["cloud.graphql"]
        assert env["PREFECT__CLOUD__SEND_FLOW_RUN_LOGS"]["value"] == "true"
    assert env["PREFECT__LOGGING__EXTRA_LOGGERS"]["value"] == str(
        MODES[mode]["logging.extra_loggers"]
    )
    assert "tok-parity-SECRET" not in repr(ours) and "tok-stray-SECRET" not in repr(ours)


def test_every_allowed_difference_is_used_and_in_the_readme(fixture_path):
    for spec in SPECS:
        for mode in MODES:
            ours, theirs = _both_renders(fixture_path, spec, mode)
            for path in _differences(_normal(theirs), _normal(ours)):
                USED.update(_allowed_by(path, mode))
    unused = [e["note"] for e in ALLOWED if e["note"] not in USED]
    assert not unused, f"allowed differences that no case shows (remove them): {unused}"
    text = README.read_text(encoding="utf-8")
    section = text.split("## Migrating from", 1)[1].split("\n## ", 1)[0]
    leads = re.findall(r"^- \*\*(.+?)\*\*", section, flags=re.MULTILINE)
    missing = [e["note"] for e in ALLOWED if e["note"] not in leads]
    assert not missing, f"allowed differences without a README migration note: {missing}"
