#!/usr/bin/env bash
# Builds the Python wheel, dist/diarist-<version>-cp311-abi3-<platform>.whl (crates/diarist-py,
# with maturin from .venv-py-build, which `make setup` installs): a release build of the
# extension, with the models the default configuration uses and ONNX Runtime (with their
# licences and notices) copied into the package first, so that the wheel works offline on its
# own. Prints the wheel's path and size.
#
# The models copied are the ones configs/diarist.toml names, and of each only the files its
# configured variant loads (manifest.toml, LICENSE and NOTICE besides): the other variants' files
# and the test model stay out.
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN=.venv-py-build/bin/maturin
PKG=crates/diarist-py/python/diarist
ORT_LIB=.ort/libonnxruntime.so.1.32.0

die() {
  echo "wheel: $*" >&2
  exit 1
}

[ -x "$MATURIN" ] || die "$MATURIN is missing: run \`make setup\`"
for f in "$ORT_LIB" .ort/LICENSE .ort/ThirdPartyNotices.txt; do
  [ -f "$f" ] || die "$f is missing: run \`make setup\`"
done

# The files of every configured model that its configured variant loads, as `model/file`
# lines: the variant's graph (for a split embedding model, its backbone and the shared pooling
# head instead), a tokenizer, the manifest and the licence files.
model_files() {
  python3 - <<'EOF'
import pathlib, tomllib
c = tomllib.load(open("configs/diarist.toml", "rb"))
chosen = [
    (c["models"]["segmentation"], c["models"]["segmentation_variant"]),
    (c["models"]["embedding"], c["models"]["embedding_variant"]),
    (c["pii"]["model"], c["pii"]["variant"]),
]
for name, variant in chosen:
    d = pathlib.Path("models") / name
    m = tomllib.loads((d / "manifest.toml").read_text())
    variant = variant or m["model"].get("default_variant", "fp32")
    graph = m.get("variants", {}).get(variant) or {
        "file": m["model"]["file"],
        "frames_file": m.get("split", {}).get("frames_file"),
    }
    files = {"manifest.toml", graph["file"]}
    if "split" in m and graph.get("frames_file"):
        files = {"manifest.toml", graph["frames_file"], m["split"]["pool_file"]}
    if "tokenizer" in m:
        files.add(m["tokenizer"]["file"])
    files |= {f for f in ("LICENSE", "NOTICE") if (d / f).is_file()}
    for f in sorted(files):
        print(f"{name}/{f}")
EOF
}

rm -rf "$PKG/models" "$PKG/lib"
mkdir -p "$PKG/models" "$PKG/lib"
for f in $(model_files); do
  [ -f "models/$f" ] || die "models/$f is missing"
  install -D -m 644 "models/$f" "$PKG/models/$f"
done
install -m 644 "$ORT_LIB" "$PKG/lib/"
install -m 644 .ort/LICENSE "$PKG/lib/LICENSE.onnxruntime"
install -m 644 .ort/ThirdPartyNotices.txt "$PKG/lib/ThirdPartyNotices.onnxruntime.txt"

mkdir -p dist
[ -f dist/.gitignore ] || echo '*' >dist/.gitignore
rm -f dist/diarist-*.whl
"$MATURIN" build --quiet --release --locked --manifest-path crates/diarist-py/Cargo.toml \
  --out dist
wheel=$(ls dist/diarist-*.whl)
echo "wheel: $wheel ($(du -h "$wheel" | cut -f1))"
