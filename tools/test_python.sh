#!/usr/bin/env bash
# Tests the Python package as a user gets it: builds the wheel (tools/wheel.sh) and the command
# line whose output the package must reproduce, installs the wheel with the pinned test packages
# (crates/diarist-py/tests/requirements.txt) into a fresh virtual environment, offline (from
# .venv-py-build/wheelhouse, which `make setup` fills: the wheel needs nothing from a network),
# and runs crates/diarist-py/tests there with pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELHOUSE=.venv-py-build/wheelhouse
REQS=crates/diarist-py/tests/requirements.txt
[ -f "$WHEELHOUSE/requirements.txt" ] || {
  echo "test_python: $WHEELHOUSE is missing: run \`make setup\`" >&2
  exit 1
}

start=$SECONDS
cargo build --locked --release -p diarist
./tools/wheel.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links "$WHEELHOUSE" dist/diarist-*.whl -r "$REQS"
# -P: nothing from the working directory shadows the installed package
"$tmp/venv/bin/python" -P -m pytest -p no:cacheprovider crates/diarist-py/tests
echo "test_python: passed in $((SECONDS - start)) s"
