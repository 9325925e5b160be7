#!/usr/bin/env bash
# Packages the release build (target/release/diarist, from `make build`) as a relocatable tree,
# then as a tarball or a Debian package:
#
#   tools/dist.sh tarball   dist/diarist-<version>-linux-x86_64.tar.gz: a <prefix> tree
#                           (bin/, lib/diarist/, share/diarist/models/, etc/diarist/, share/doc/)
#   tools/dist.sh deb       dist/diarist_<version>_amd64.deb from that tree (run `tarball` first):
#                           /usr/bin, /usr/lib/diarist, /usr/share/diarist/models, /etc/diarist
#                           (conffiles), the diarist.service unit; deploy/debian holds the rest
#
# The version is the binary's (`diarist --version`, i.e. Cargo.toml's). The binary keeps no debug
# information (so no source paths); the models shipped are the ones configs/diarist.toml names,
# with every file their manifests list that the repository tracks, plus LICENSE and NOTICE.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/release/diarist
ORT_VERSION=1.32.0
ORT_LIB=.ort/libonnxruntime.so.$ORT_VERSION

die() {
  echo "dist: $*" >&2
  exit 1
}

[ -x "$BIN" ] || die "$BIN is missing: run \`make build\` first"
version=$("$BIN" --version | awk '{print $2}')
[ -n "$version" ] || die "cannot read the version of $BIN"
name=diarist-$version-linux-x86_64
tree=dist/$name
# Timestamps inside the packages: the last commit's, so that the same commit packs the same bytes.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)

# Every file of model directory $1 that goes into a release, one per line: manifest.toml, the
# files its manifest names (any key `file` or `*_file`, at any depth), LICENSE and NOTICE; in a
# git checkout, only the files git tracks (a locally built fp32 export stays out).
model_files() {
  python3 - "$1" <<'EOF'
import pathlib, sys, tomllib
d = pathlib.Path(sys.argv[1])
names = {"manifest.toml", "LICENSE", "NOTICE"}
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, str) and (k == "file" or k.endswith("_file")):
                names.add(x)
            walk(x)
walk(tomllib.loads((d / "manifest.toml").read_text()))
for n in sorted(names):
    if (d / n).is_file() or n not in ("LICENSE", "NOTICE"):
        print(n)
EOF
}

# The model directories configs/diarist.toml names.
config_models() {
  python3 - <<'EOF'
import tomllib
c = tomllib.load(open("configs/diarist.toml", "rb"))
for m in (c["models"]["segmentation"], c["models"]["embedding"], c["pii"]["model"]):
    print(m)
EOF
}

# A shipped configuration file: configs/$1 with every key commented out at its default, so that
# the file changes nothing until a key is uncommented (and a newer binary's defaults still apply);
# $2: the environment variable naming another file, $3: the `diarist config` command showing it.
etc_config() {
  cat <<EOF
# $1: changes to the defaults compiled into diarist, merged over them. Every key
# is written out below, commented out at its default: uncomment and edit the ones to change.
# Files merged, lowest first: /etc/diarist/$1, <prefix>/etc/diarist/$1 (the
# binary being <prefix>/bin/diarist), \$XDG_CONFIG_HOME/diarist/$1 (else
# ~/.config/diarist/$1), \$$2, then --config FILE; flags override them all.
# \`$3\` prints the effective configuration and where it came from.
EOF
  # the original's first paragraph (about the compiled-in file) gives way to the one above
  awk 'NR == 1, /^$/ { if (/^$/) print; next } { print }' "configs/$1" | sed -E 's/^([a-z_]+ = )/# \1/'
}

copy_models() {
  local into=$1 m f tracked
  tracked=$(git ls-files models 2>/dev/null || true)
  for m in $(config_models); do
    [ -f "models/$m/manifest.toml" ] || die "models/$m/manifest.toml is missing"
    mkdir -p "$into/$m"
    for f in $(model_files "models/$m"); do
      if [ -n "$tracked" ] && ! grep -qxF "models/$m/$f" <<<"$tracked"; then
        echo "dist: leaving out models/$m/$f (listed in its manifest, not tracked by git)"
        continue
      fi
      [ -f "models/$m/$f" ] || die "models/$m/$f (listed in its manifest) is missing"
      install -m 644 "models/$m/$f" "$into/$m/$f"
    done
  done
}

tarball() {
  for f in "$ORT_LIB" .ort/LICENSE .ort/ThirdPartyNotices.txt; do
    [ -f "$f" ] || die "$f is missing: run \`make setup\`"
  done
  rm -rf "$tree" "dist/$name.tar.gz"
  mkdir -p "$tree"/{bin,lib/diarist,etc/diarist,share/diarist/models,share/doc/diarist}
  objcopy --strip-debug "$BIN" "$tree/bin/diarist"
  chmod 755 "$tree/bin/diarist"
  install -m 644 "$ORT_LIB" "$tree/lib/diarist/"
  install -m 644 .ort/LICENSE "$tree/lib/diarist/LICENSE.onnxruntime"
  install -m 644 .ort/ThirdPartyNotices.txt "$tree/lib/diarist/ThirdPartyNotices.onnxruntime.txt"
  copy_models "$tree/share/diarist/models"
  etc_config diarist.toml DIARIST_CONFIG "diarist config" >"$tree/etc/diarist/diarist.toml"
  etc_config server.toml DIARIST_SERVER_CONFIG "diarist config --server" \
    >"$tree/etc/diarist/server.toml"
  install -m 644 README.md "$tree/share/doc/diarist/README.md"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C dist -cf - "$name" |
    gzip -n >"dist/$name.tar.gz"
  echo "dist: dist/$name.tar.gz ($(du -h "dist/$name.tar.gz" | cut -f1))"
}

# The newest glibc symbol version the binary and ONNX Runtime need.
glibc_needed() {
  objdump -T "$tree/bin/diarist" "$tree/lib/diarist/libonnxruntime.so.$ORT_VERSION" |
    grep -oE 'GLIBC_[0-9]+\.[0-9]+' | sed 's/GLIBC_//' | sort -uV | tail -1
}

deb() {
  [ -x "$tree/bin/diarist" ] || die "$tree is missing: run \`tools/dist.sh tarball\` first"
  local stage=dist/deb-staging deb=dist/diarist_${version}_amd64.deb
  rm -rf "$stage" "$deb"
  mkdir -p "$stage"/{DEBIAN,usr/bin,usr/lib,usr/share/diarist,usr/share/doc,etc/diarist}
  mkdir -p "$stage/lib/systemd/system"
  cp -a "$tree/bin/diarist" "$stage/usr/bin/"
  cp -a "$tree/lib/diarist" "$stage/usr/lib/"
  cp -a "$tree/share/diarist/models" "$stage/usr/share/diarist/"
  cp -a "$tree/share/doc/diarist" "$stage/usr/share/doc/"
  cp -a "$tree/etc/diarist/diarist.toml" "$tree/etc/diarist/server.toml" "$stage/etc/diarist/"
  install -m 600 deploy/debian/diarist.env "$stage/etc/diarist/diarist.env"
  install -m 644 deploy/debian/diarist.service "$stage/lib/systemd/system/"
  install -m 644 deploy/debian/conffiles "$stage/DEBIAN/"
  install -m 755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$stage/DEBIAN/"
  local depends size
  depends="libc6 (>= $(glibc_needed)), libgcc-s1, libstdc++6, libasound2 | libasound2t64, passwd"
  size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@DEPENDS@/$depends/" -e "s/@SIZE@/$size/" \
    deploy/debian/control.in >"$stage/DEBIAN/control"
  find "$stage" -exec touch -h -d "@$epoch" {} +
  SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
  rm -rf "$stage"
  echo "dist: $deb ($(du -h "$deb" | cut -f1))"
}

mkdir -p dist
# Packages are build output, never committed.
[ -f dist/.gitignore ] || echo '*' >dist/.gitignore
case "${1:-}" in
  tarball) tarball ;;
  deb) deb ;;
  *) die "usage: tools/dist.sh tarball|deb" ;;
esac
