# Sourced by the bench/* runners: the bench's own venv (bench/.venv) with the anchors
# (prefect 0.15.13, the official kubernetes client) and a release build of kjenv.
# Sets $BENCH_PY. Reuses the venv; rebuilds kjenv every time (it is what is measured).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
BENCH_VENV=bench/.venv
if [ ! -x "$BENCH_VENV/bin/python" ]; then
  python3 -m venv "$BENCH_VENV"
fi
"$BENCH_VENV/bin/pip" install -q "prefect==0.15.13" "marshmallow==3.26.2" "kubernetes==37.0.2" \
  "cloudpickle==3.1.3" "pyyaml==6.0.4" "matplotlib==3.10.7" "maturin>=1.9.4,<2"
"$BENCH_VENV/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps .
BENCH_PY="$BENCH_VENV/bin/python"
