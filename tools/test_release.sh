#!/usr/bin/env bash
# Tests the release packages the way a user gets them (`make dist deb` first; `make test` runs it):
#
# 1. The tarball, unpacked into a temporary prefix: `diarize`, `stream`, `serve` + `client` and
#    `redact` on fixtures copied beside it, run from another working directory with a bare
#    environment (env -i: PATH, HOME, DIARIST_TOKEN) and, as root where `unshare --mount` works,
#    with an empty tmpfs over the checkout; a user configuration file is merged; neither the
#    release's files (the binary's strings included) nor `diarist config` name the checkout.
# 2. The Debian package (as root): `dpkg -i`, the installed /usr/bin/diarist diarizes a fixture as
#    the `diarist` user the package creates, `systemd-analyze verify` accepts the unit (where
#    systemd-analyze exists), and `dpkg --purge` leaves the machine as it was.
#
# Exits non-zero with a message naming the failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
tarball=dist/diarist-$version-linux-x86_64.tar.gz
deb=dist/diarist_${version}_amd64.deb

fail() {
  echo "test_release: FAILED: $*" >&2
  exit 1
}
note() { echo "test_release: $*"; }

[ -f "$tarball" ] || fail "$tarball is missing: run \`make dist\`"
tmp=$(mktemp -d /tmp/diarist-release.XXXXXX)
server_pid=""
installed=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -z "$installed" ] || dpkg --purge diarist >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
case "$tmp/" in "$root/"*) fail "the temporary directory $tmp lies inside the checkout" ;; esac
prefix=$tmp/prefix
work=$tmp/work
home=$tmp/home
mkdir -p "$work" "$home"
chmod 755 "$tmp" "$work"
tar -xzf "$tarball" -C "$tmp"
mv "$tmp/diarist-$version-linux-x86_64" "$prefix"
cp audio-fixtures/pyannote_sample.wav "$work/sample.wav"
printf '%s\n' "my name is maria gonzalez" "email me at j fernandez at protonmail dot com" \
  >"$work/notes.txt"

hide=""
if [ "$(id -u)" -eq 0 ] && (cd / && unshare --mount sh -c "mount -t tmpfs none '$root'") 2>/dev/null; then
  hide=1
  note "the checkout $root is hidden under an empty tmpfs for every command"
else
  note "NOTE: not root or no mount namespaces here: the checkout stays visible (still unused)"
fi

# exec_in_work [NAME=VALUE...] COMMAND...: becomes COMMAND, in $work, with only PATH, HOME and
# the given variables, the checkout hidden where possible.
exec_in_work() {
  local path=$prefix/bin:/usr/local/bin:/usr/bin:/bin
  cd "$work"
  if [ -n "$hide" ]; then
    # shellcheck disable=SC2016 # $1 and $@ are the inner shell's
    exec unshare --mount sh -c 'mount -t tmpfs -o size=1m none "$1" && shift && exec "$@"' \
      sh "$root" env -i PATH="$path" HOME="$home" "$@"
  fi
  exec env -i PATH="$path" HOME="$home" "$@"
}

# run [NAME=VALUE...] COMMAND...: exec_in_work in a subshell (`( exec_in_work ... ) &` starts
# one in the background whose $! is COMMAND's own process).
run() { (exec_in_work "$@"); }

# expect FILE PATTERN WHAT: FILE holds a line matching the extended regex PATTERN.
expect() {
  grep -Eq -- "$2" "$1" || fail "$3 (no line matching '$2' in $1: $(head -c 600 "$1"))"
}

# speakers RTTM: the number of distinct speakers in it.
speakers() { awk '$1 == "SPEAKER" {print $8}' "$1" | sort -u | wc -l; }

# --- 1. the tarball ---
note "tarball $tarball ($(du -h "$tarball" | cut -f1)) unpacked into $prefix"
if [ -n "$hide" ]; then
  [ -z "$(run ls -A "$root")" ] || fail "the checkout is still visible inside the namespace"
fi
n=$(grep -a -c -F "$root" "$prefix/bin/diarist" || true)
[ "$n" -eq 0 ] || fail "bin/diarist names the checkout $root ($n times)"
if grep -r -l -a -F "$root" "$prefix" >"$tmp/named"; then
  fail "release files name the checkout $root: $(cat "$tmp/named")"
fi
note "ok: no file of the release names $root"

run diarist config >"$tmp/config.toml" 2>&1 || fail "diarist config: $(cat "$tmp/config.toml")"
! grep -q -F "$root" "$tmp/config.toml" || fail "diarist config names the checkout $root"
! grep -q "NOT FOUND" "$tmp/config.toml" || fail "diarist config: $(grep "NOT FOUND" "$tmp/config.toml")"
expect "$tmp/config.toml" "^# +$prefix/etc/diarist/diarist.toml " "the install's etc/diarist/diarist.toml is merged"
expect "$tmp/config.toml" "^segmentation = \"$prefix/share/diarist/models/segmentation-3.0\"" "models resolve in share/diarist/models"
expect "$tmp/config.toml" "^onnxruntime = \"$prefix/lib/diarist/libonnxruntime.so.1.32.0\"" "ONNX Runtime resolves in lib/diarist"
note "ok: diarist config"

run diarist diarize sample.wav >"$work/sample.rttm" 2>"$tmp/err" || fail "diarize: $(cat "$tmp/err")"
[ "$(speakers "$work/sample.rttm")" -eq 2 ] || fail "diarize found $(speakers "$work/sample.rttm") speakers, not 2"
note "ok: diarize ($(wc -l <"$work/sample.rttm") turns, 2 speakers)"

run diarist stream sample.wav >"$work/stream.jsonl" 2>"$tmp/err" || fail "stream: $(cat "$tmp/err")"
expect "$work/stream.jsonl" '"type":"turn".*"final":true' "stream reports final turns"
tail -1 "$work/stream.jsonl" | grep -q '"type":"summary"' || fail "stream did not end with a summary"
note "ok: stream ($(grep -c '"type":"turn"' "$work/stream.jsonl") turn events)"

run diarist redact notes.txt >"$work/redacted.txt" 2>"$tmp/err" || fail "redact: $(cat "$tmp/err")"
expect "$work/redacted.txt" '^my name is \[PERSON_NAME\]$' "redact hides the name"
expect "$work/redacted.txt" '^email me at \[EMAIL\]$' "redact hides the e-mail address"
note "ok: redact"

mkdir -p "$home/.config/diarist"
printf '[offline]\nnum_speakers = 1\n' >"$home/.config/diarist/diarist.toml"
run diarist config >"$tmp/config.toml" 2>&1 || fail "diarist config: $(cat "$tmp/config.toml")"
expect "$tmp/config.toml" "^# +$home/.config/diarist/diarist.toml " "the user's file is merged"
expect "$tmp/config.toml" '^num_speakers = 1$' "the user's file changes num_speakers"
rm -r "$home/.config"
note "ok: a user configuration file holding one key is merged"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=release-test-$$
(exec_in_work DIARIST_TOKEN="$token" diarist serve --listen "127.0.0.1:$port" >"$tmp/serve.log" 2>&1) &
server_pid=$!
for _ in $(seq 120); do
  kill -0 "$server_pid" 2>/dev/null || fail "serve exited: $(cat "$tmp/serve.log")"
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.5
done
run DIARIST_TOKEN="$token" diarist client --url "ws://127.0.0.1:$port/v1/stream" sample.wav \
  >"$work/client.jsonl" 2>"$tmp/err" || fail "client: $(cat "$tmp/err") / serve: $(cat "$tmp/serve.log")"
expect "$work/client.jsonl" '"type":"turn"' "the server sends turns"
kill -TERM "$server_pid"
wait "$server_pid" || fail "serve did not exit cleanly on SIGTERM: $(cat "$tmp/serve.log")"
server_pid=""
! grep -q -F "$root" "$tmp/serve.log" || fail "serve's log names the checkout"
note "ok: serve + client ($(grep -c '"type":"turn"' "$work/client.jsonl") turn messages)"

# --- 2. the Debian package ---
if [ "$(id -u)" -ne 0 ]; then
  note "NOTE: not root: the Debian package is built but not installed here"
  exit 0
fi
[ -f "$deb" ] || fail "$deb is missing: run \`make deb\`"
if dpkg -s diarist >/dev/null 2>&1; then
  note "NOTE: a diarist package is already installed on this machine: left alone, not tested"
  exit 0
fi
note "Debian package $deb ($(du -h "$deb" | cut -f1))"
installed=1
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$tmp/dpkg.log")"
id diarist >/dev/null || fail "the package did not create the diarist user"
[ "$(dpkg-query -W -f='${Conffiles}' diarist | grep -c /etc/diarist/)" -eq 3 ] ||
  fail "the package's conffiles are not the three files in /etc/diarist"
[ "$(stat -c %a /etc/diarist/diarist.env)" = 600 ] || fail "/etc/diarist/diarist.env is not 0600"
run setpriv --reuid=diarist --regid=diarist --clear-groups /usr/bin/diarist diarize sample.wav \
  >"$work/deb.rttm" 2>"$tmp/err" || fail "the installed diarist (as user diarist): $(cat "$tmp/err")"
[ "$(speakers "$work/deb.rttm")" -eq 2 ] || fail "the installed diarist found $(speakers "$work/deb.rttm") speakers"
run /usr/bin/diarist config >"$tmp/config.toml" 2>&1 || fail "diarist config: $(cat "$tmp/config.toml")"
expect "$tmp/config.toml" '^# +/etc/diarist/diarist.toml \(system\)' "/etc/diarist/diarist.toml is merged"
expect "$tmp/config.toml" '^segmentation = "/usr/share/diarist/models/segmentation-3.0"' "models in /usr/share/diarist"
note "ok: dpkg -i; /usr/bin/diarist diarize as user diarist; $(id diarist)"
if command -v systemd-analyze >/dev/null; then
  # a warning (an unknown key, say) fails the test too
  if ! systemd-analyze verify /lib/systemd/system/diarist.service >"$tmp/verify.log" 2>&1 ||
    [ -s "$tmp/verify.log" ]; then
    fail "systemd-analyze verify diarist.service: $(cat "$tmp/verify.log")"
  fi
  exposure=$(systemd-analyze security --offline=true /lib/systemd/system/diarist.service 2>/dev/null |
    grep -o 'Overall exposure level.*' || true)
  note "ok: systemd-analyze verify diarist.service (${exposure:-no security summary})"
else
  note "NOTE: systemd-analyze is not installed: the unit is not verified"
fi
dpkg --purge diarist >"$tmp/dpkg.log" 2>&1 || fail "dpkg --purge: $(cat "$tmp/dpkg.log")"
installed=""
! id diarist >/dev/null 2>&1 || fail "the diarist user is left after purge"
for p in /usr/bin/diarist /usr/lib/diarist /usr/share/diarist /etc/diarist /lib/systemd/system/diarist.service; do
  [ ! -e "$p" ] || fail "$p is left after purge"
done
note "ok: dpkg --purge left nothing behind"
note "all release checks passed"
