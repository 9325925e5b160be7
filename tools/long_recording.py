#!/usr/bin/env python3
"""Writes a long WAV for speed and memory measurements: the given WAV files (same format), in
order, repeated until the output lasts exactly SECONDS.

    tools/long_recording.py /tmp/long1h.wav 3600 ../shared/eval/*/*.wav
"""
import sys
import wave


def main(out: str, seconds: str, inputs: list[str]) -> None:
    frames, params = [], None
    for path in inputs:
        with wave.open(path) as w:
            p = w.getparams()
            if params and p[:3] != params[:3]:
                sys.exit(f"{path}: {p[:3]} differs from {params[:3]} (channels, width, rate)")
            params = params or p
            frames.append(w.readframes(p.nframes))
    data = b"".join(frames)
    if not data:
        sys.exit("no audio in the inputs")
    need = int(float(seconds) * params.framerate) * params.sampwidth * params.nchannels
    with wave.open(out, "wb") as o:
        o.setparams(params)
        o.writeframes((data * (need // len(data) + 1))[:need])


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
