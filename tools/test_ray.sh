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
. tools/wheel_venv.sh

# Every wait inside the tests is bounded (tests_ray/conftest.py, WAIT); this bounds the whole.
TIMEOUT_S=${TEST_RAY_TIMEOUT_S:-900}
start=$SECONDS
wheel_venv test_ray .venv-py-build/wheelhouse-ray ray crates/diarist-py/tests_ray/requirements.txt
# -P: nothing from the working directory shadows the installed package
timeout --kill-after=30 "$TIMEOUT_S" "$venv/bin/python" -P -m pytest -p no:cacheprovider \
  crates/diarist-py/tests_ray
echo "test_ray: passed in $((SECONDS - start)) s"
