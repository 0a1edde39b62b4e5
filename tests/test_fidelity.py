"""Differential conformance against the real API server (real tier only).

Re-runs ``localcluster/fidelity/corpus.yaml`` on a fresh local cluster and on the cluster of
``KJENV_TEST_KUBECONFIG`` and holds the emulator to the committed ``localcluster/FIDELITY.md``:
the share of identical answers may not drop, and no difference may appear that the report does
not list. Regenerate the report with
``python localcluster/fidelity/run.py --real-kubeconfig K --out localcluster/FIDELITY.md``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from kube_cluster import REAL_KUBECONFIG

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "localcluster" / "fidelity" / "run.py"
REPORT = ROOT / "localcluster" / "FIDELITY.md"


def _runner():
    spec = importlib.util.spec_from_file_location("kjenv_fidelity_run", RUNNER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


if REAL_KUBECONFIG:

    def test_fidelity_real_no_regression():
        run = _runner()
        report = REPORT.read_text()
        matched, total = run.committed_share(report)
        listed = run.listed_keys(report)
        outcomes = run.run_corpus(REAL_KUBECONFIG)
        assert all(o.ran for o in outcomes), [o.entry["id"] for o in outcomes if not o.ran]
        volatile = {o.entry["id"] for o in outcomes if o.entry.get("volatile")}
        now, count = sum(o.matches or o.entry["id"] in volatile for o in outcomes), len(outcomes)
        share, committed = now / count, matched / total
        assert share >= committed, f"{now}/{count} identical, FIDELITY.md says {matched}/{total}"
        new = sorted(
            run.key_of(o.entry["id"], path)
            for o in outcomes
            for path, _, _ in o.diffs
            if run.key_of(o.entry["id"], path) not in listed and o.entry["id"] not in volatile
        )
        assert not new, "differences FIDELITY.md does not list:\n" + "\n".join(new)
