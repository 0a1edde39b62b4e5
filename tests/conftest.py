"""Shared helpers for kjenv's pytest suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

# tests/s3 runs in an environment of its own (scripts/test's .venv-s3, with botocore and moto):
# elsewhere there is nothing for it to import.
collect_ignore = [] if importlib.util.find_spec("moto") else ["s3"]

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def fixture_path():
    """Path of a file in tests/fixtures."""
    return lambda name: str(FIXTURES / name)


@pytest.fixture
def cluster(local_cluster):
    """The session's local cluster (the kjenv.testing plugin's), with no fault left armed after
    the test: for the fault tests."""
    local_cluster.clear_faults()
    yield local_cluster
    local_cluster.clear_faults()


@pytest.fixture(autouse=True)
def _clean_prefect_env(monkeypatch, tmp_path):
    """No test sees the developer's Prefect settings or Kubernetes configuration."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    for name in (
        "PREFECT__CLOUD__AUTH_TOKEN",
        "PREFECT__CLOUD__GRAPHQL",
        "PREFECT__CONTEXT__IMAGE",
        "PREFECT__CONTEXT__FLOW_RUN_ID",
        "PREFECT__CONTEXT__FLOW_FILE_PATH",
        "PREFECT__BACKEND",
        "PREFECT__CLOUD__API",
        "PREFECT__SERVER__ENDPOINT",
        "PREFECT__LOGGING__EXTRA_LOGGERS",
        "KJENV_BACKEND",
    ):
        monkeypatch.delenv(name, raising=False)
