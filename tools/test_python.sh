#!/usr/bin/env bash
# Tests the Python package as a user gets it: builds the wheel (tools/wheel.sh) and the command
# line whose output the package must reproduce, installs the wheel with the pinned test packages
# (crates/diarist-py/tests/requirements.txt) into a fresh virtual environment, offline (from
# .venv-py-build/wheelhouse, which `make setup` fills: the wheel needs nothing from a network),
# and runs crates/diarist-py/tests there with pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/wheel_venv.sh

start=$SECONDS
wheel_venv test_python .venv-py-build/wheelhouse "" crates/diarist-py/tests/requirements.txt
# -P: nothing from the working directory shadows the installed package
"$venv/bin/python" -P -m pytest -p no:cacheprovider crates/diarist-py/tests
echo "test_python: passed in $((SECONDS - start)) s"
