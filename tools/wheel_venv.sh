# Sourced by tools/test_python.sh and tools/test_ray.sh: `wheel_venv NAME WHEELHOUSE EXTRA REQS`
# builds the command line (whose outputs the tests compare with) and the wheel (tools/wheel.sh),
# then installs the wheel (with the extra EXTRA unless empty) and the pinned test packages REQS
# into a fresh virtual environment, offline from WHEELHOUSE (which `make setup` fills). The
# environment's python is `$venv/bin/python`; it is removed when the script exits.
wheel_venv() {
  local name=$1 wheelhouse=$2 extra=$3 reqs=$4
  [ -f "$wheelhouse/requirements.txt" ] || {
    echo "$name: $wheelhouse is missing: run \`make setup\`" >&2
    exit 1
  }
  cargo build --locked --release -p diarist
  ./tools/wheel.sh
  local wheel
  wheel=$(ls dist/diarist-*.whl)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links "$wheelhouse" "$wheel${extra:+[$extra]}" -r "$reqs"
}
