#!/usr/bin/env bash
# Tests diarist.ray on a real Ray cluster: builds the wheel (tools/wheel.sh) and the command line
# whose outputs the cluster's must equal, installs the wheel with its `ray` extra and the pinned
# test packages (crates/diarist-py/tests_ray/requirements.txt) into a fresh virtual environment,
# offline (from .venv-py-build/wheelhouse-ray, which `make setup` fills), and runs
# crates/diarist-py/tests_ray there with pytest. The tests start a three-node Ray cluster on
# 127.0.0.1 (ray.cluster_utils.Cluster: a head and two worker nodes, one CPU each), remove a
# worker node in the middle of a run, and end the cluster's processes when done.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELHOUSE=.venv-py-build/wheelhouse-ray
REQS=crates/diarist-py/tests_ray/requirements.txt
# Every wait inside the tests is bounded (tests_ray/conftest.py, WAIT); this bounds the whole.
TIMEOUT_S=${TEST_RAY_TIMEOUT_S:-900}
[ -f "$WHEELHOUSE/requirements.txt" ] || {
  echo "test_ray: $WHEELHOUSE is missing: run \`make setup\`" >&2
  exit 1
}

start=$SECONDS
cargo build --locked --release -p diarist
./tools/wheel.sh
wheel=$(ls dist/diarist-*.whl)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links "$WHEELHOUSE" "$wheel[ray]" -r "$REQS"
# -P: nothing from the working directory shadows the installed package
timeout --kill-after=30 "$TIMEOUT_S" "$tmp/venv/bin/python" -P -m pytest -p no:cacheprovider \
  crates/diarist-py/tests_ray
echo "test_ray: passed in $((SECONDS - start)) s"
