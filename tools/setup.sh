#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine: system packages, the ONNX Runtime shared library
# (taken from the PyPI `onnxruntime` wheel, never from a CDN), and a build of the workspace.
# Everything it fetches comes from the package registries (Debian, PyPI, crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION=1.32.0
ORT_DIR=.ort
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"

need_pkgs=()
# chromium and chromium-driver: the browser page's end-to-end test (headless, over WebDriver);
# qemu-user: the golden model-output test also runs as an AVX2-only CPU (qemu-x86_64 -cpu EPYC-Rome)
# binutils: objcopy and objdump for `make dist`; systemd: systemd-analyze, which checks the Debian
# package's service unit in tools/test_release.sh (it installs without systemd running)
# haproxy: tools/check_deploy.sh checks and runs deploy/haproxy/haproxy.cfg; python3-venv: the
# virtual environment of the deployment checks' Python tools (.venv-tools, below)
for p in pkg-config libasound2-dev unzip chromium chromium-driver qemu-user binutils systemd \
  haproxy python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3-pip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The library, and its licence and third-party notices for the release packages (`make dist`);
# only missing files are added (by rename: a library in use is never rewritten).
ort_files=("capi/libonnxruntime.so.$ORT_VERSION" LICENSE ThirdPartyNotices.txt)
missing=()
for f in "${ort_files[@]}"; do
  [ -f "$ORT_DIR/$(basename "$f")" ] || missing+=("onnxruntime/$f")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: taking ${missing[*]} from the PyPI onnxruntime $ORT_VERSION wheel"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 \
    -d "$tmp" "onnxruntime==$ORT_VERSION"
  mkdir -p "$ORT_DIR"
  unzip -q -j "$tmp"/onnxruntime-*.whl "${missing[@]}" -d "$tmp/x"
  mv "$tmp"/x/* "$ORT_DIR/"
  rm -rf "$tmp"
fi
echo "setup: ONNX Runtime at $ORT_LIB"

# kubernetes-validate (Kubernetes schemas bundled, no network needed to validate) for
# tools/check_deploy.sh, in a virtual environment of its own: Debian's Python refuses `pip
# install` outside one (PEP 668). Made only when missing or at another version.
KV_VERSION=1.37.0
VENV=.venv-tools
if [ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "$KV_VERSION" ]; then
  echo "setup: installing kubernetes-validate $KV_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KV_VERSION"
fi

# The Python package (tools/wheel.sh builds the wheel, tools/test_python.sh tests it): maturin in
# a virtual environment of its own, and the packages the test installs beside the wheel
# (crates/diarist-py/tests/requirements.txt, every version pinned) downloaded into its
# wheelhouse, so that the test's fresh environment installs offline. Each made only when missing
# or out of date.
MATURIN_VERSION=1.16.0
PYVENV=.venv-py-build
if [ "$("$PYVENV/bin/maturin" --version 2>/dev/null)" != "maturin $MATURIN_VERSION" ]; then
  echo "setup: installing maturin $MATURIN_VERSION into $PYVENV"
  python3 -m venv "$PYVENV"
  "$PYVENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin==$MATURIN_VERSION"
fi
# Downloads the packages pinned in requirements file $1 into wheelhouse $2 (with a copy of the
# file, so that it is downloaded again only when the file changes); $3 names them in the log.
wheelhouse() {
  if ! cmp -s "$1" "$2/requirements.txt"; then
    echo "setup: downloading the $3 packages into $2"
    rm -rf "$2"
    "$PYVENV/bin/python" -m pip download --quiet --disable-pip-version-check -d "$2" -r "$1"
    cp "$1" "$2/requirements.txt"
  fi
}
wheelhouse crates/diarist-py/tests/requirements.txt "$PYVENV/wheelhouse" "Python test's"

# The Ray test's packages (tools/test_ray.sh: the wheel's `ray` extra, Ray Data and pytest, every
# version pinned in crates/diarist-py/tests_ray/requirements.txt) in a wheelhouse of their own,
# so that its fresh environment installs offline and the Python test's stays small. Downloaded
# only when missing or out of date.
wheelhouse crates/diarist-py/tests_ray/requirements.txt "$PYVENV/wheelhouse-ray" "Ray test's"
