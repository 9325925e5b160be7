#!/usr/bin/env bash
# DER of the development sets, offline and streaming (both backbone phases), per set and pooled
# over all of them, with the miss and false alarm split by how many reference speakers talk.
#
#   tools/dev_accuracy.sh [EVAL_DIR [OUT_DIR [DIARIST_ARGS...]]]
#
# EVAL_DIR holds one directory per set of *.wav with their *.rttm and *.uem (default
# ../shared/eval); results and hypotheses go to OUT_DIR (default target/dev-accuracy). Extra
# arguments go to both `diarist diarize` and `diarist stream`, e.g. `--config fp32.toml`.
# Uses target/release/diarist (build it with `cargo build --release -p diarist`).
set -euo pipefail
eval_dir=${1:-../shared/eval}
out=${2:-target/dev-accuracy}
shift $(($# < 2 ? $# : 2))
bin=${DIARIST_BIN:-target/release/diarist}
rm -rf "$out"
mkdir -p "$out/all-ref"
sets=()
for d in "$eval_dir"/*/; do
    set_name=$(basename "$d")
    compgen -G "$d*.rttm" >/dev/null || continue
    sets+=("$set_name")
    ln -s "$(realpath "$d")"/*.rttm "$(realpath "$d")"/*.uem "$out/all-ref/"
done
score() { # score HYP_DIR REF_DIR
    "$bin" eval --ref "$2" --hyp "$1" --uem "$2"
}
for mode in offline stream0 stream1; do
    mkdir -p "$out/$mode/all"
    for s in "${sets[@]}"; do
        case $mode in
            offline) "$bin" diarize "$@" -o "$out/$mode/$s" "$eval_dir/$s" >/dev/null 2>&1 ;;
            stream*) "$bin" stream "$@" --backbone-phase "${mode#stream}" \
                -o "$out/$mode/$s" "$eval_dir/$s"/*.wav >/dev/null 2>&1 ;;
        esac
        ln -s "$(realpath "$out/$mode/$s")"/*.rttm "$out/$mode/all/"
        score "$out/$mode/$s" "$eval_dir/$s" >"$out/$mode/$s.txt"
    done
    score "$out/$mode/all" "$out/all-ref" >"$out/$mode/all.txt"
done
printf '%-10s' mode
printf ' %10s' "${sets[@]}" all
printf '   speakers exact\n'
for mode in offline stream0 stream1; do
    printf '%-10s' "$mode"
    for s in "${sets[@]}" all; do
        printf ' %10s' "$(awk '/^POOLED/ {print $2}' "$out/$mode/$s.txt")"
    done
    printf '   %s\n' "$(grep -o 'exact in [0-9]* of [0-9]*' "$out/$mode/all.txt")"
done
echo
echo "offline, pooled over every set:"
sed -n '/^pooled by/,$p' "$out/offline/all.txt"
echo "streaming (phase 0), pooled over every set:"
sed -n '/^pooled by/,$p' "$out/stream0/all.txt"
