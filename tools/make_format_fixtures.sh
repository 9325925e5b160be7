#!/usr/bin/env bash
# Regenerates audio-fixtures/formats/: 3 s of the pyannote sample (10 s to 13 s) in other
# containers, codecs, rates and channel counts, plus damaged and degenerate files. Needs sox and
# ffmpeg (Debian packages); the results are committed, so tests never need them. sox runs with -D
# (no dither) so that the output is the same on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
src=audio-fixtures/pyannote_sample.wav
out=audio-fixtures/formats
rm -rf "$out"
mkdir -p "$out"
clip="$out/s16_16k_mono.wav"
sox -D "$src" -b 16 "$clip" trim 10 3
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y -i "$clip" "$@"; }
sox -D "$clip" -b 24 -e signed-integer -r 44100 -c 2 "$out/s24_44k_stereo.wav"
sox -D "$clip" -b 32 -e signed-integer "$out/s32_16k_mono.wav"
sox -D "$clip" -b 32 -e floating-point -r 48000 "$out/f32_48k_mono.wav"
sox -D "$clip" -b 16 -r 8000 "$out/s16_8k_mono.wav"
sox -D "$clip" -b 16 -r 22050 "$out/flac_22k_mono.flac"
ff -ar 44100 -ac 2 -c:a libmp3lame -b:a 96k "$out/mp3_44k_stereo.mp3"
ff -ar 48000 -ac 1 -c:a libvorbis -q:a 3 -fflags +bitexact -flags:a +bitexact "$out/vorbis_48k_mono.ogg"
ff -ar 44100 -ac 1 -c:a aac -b:a 64k -fflags +bitexact -flags:a +bitexact "$out/aac_44k_mono.m4a"
# Damaged and degenerate inputs.
: > "$out/empty.wav"
python3 -c "import random, sys; random.seed(7); sys.stdout.buffer.write(bytes(random.randrange(256) for _ in range(4096)))" > "$out/garbage.wav"
size=$(stat -c %s "$clip"); head -c $((size / 2 + 1)) "$clip" > "$out/truncated.wav"
size=$(stat -c %s "$out/flac_22k_mono.flac"); head -c $((size / 2)) "$out/flac_22k_mono.flac" > "$out/truncated.flac"
size=$(stat -c %s "$out/mp3_44k_stereo.mp3"); head -c $((size / 2)) "$out/mp3_44k_stereo.mp3" > "$out/truncated.mp3"
sox -D -n -r 16000 -b 16 -c 1 "$out/zero_length.wav" trim 0 0
sox -D -n -r 16000 -b 16 -c 1 "$out/silence_5s.wav" trim 0 5
sox -D "$clip" "$out/clip_0.2s.wav" trim 0 0.2
ls -l "$out"
